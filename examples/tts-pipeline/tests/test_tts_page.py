"""The example's page in a real browser (Debian's chromium, driven by Playwright): a story typed
in, its progress shown live from the run's metadata (chunks done / total, through values between
the first and the last), then the audio link once the run has ended; a reload of the job's page
follows the job again. Everything is real: `conveyor dev`, the backend served over HTTP, the
browser client loaded from Conveyor at /sdk/realtime.js, espeak-ng speaking.

Without chromium (or Playwright) the test is skipped, and fails under CI=true. It is marked e2e:
`pytest -m "not e2e"` leaves it out.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from tts_pipeline.backend.app import ConveyorRuns, create_app
from tts_pipeline.chunking import chunk_text
from tts_pipeline.jobs import JobStore
from tts_pipeline.storage import LocalStorage
from tts_testing import Platform, story

from conveyor.testing.platform import free_port

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("CONVEYOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]

# every text #chunks shows, as the page changes it (the test reads them back at the end)
RECORD_CHUNKS = """() => {
  window.chunksSeen = [];
  const chunks = document.getElementById("chunks");
  new MutationObserver(() => {
    window.chunksSeen.push([chunks.textContent, document.getElementById("job").dataset.status]);
  }).observe(chunks, { childList: true, characterData: true, subtree: true });
}"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI must run the browser tests")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page, failing the test on any script error."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture(scope="module")
def site(platform: Platform) -> Iterator[str]:
    """The backend over HTTP on a port of its own, as `./scripts/start` runs it (the browser
    needs a real server): its page talks to the platform's Conveyor from the browser."""
    port = free_port()
    app = create_app(
        jobs=JobStore(platform.data / "jobs.db"),
        runs=ConveyorRuns(api_url=platform.api_url, secret_key=platform.secret_key),
        storage=LocalStorage(platform.data / "storage"),
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the backend did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_the_page_shows_the_progress_live_then_the_audio_link(site: str, page: Any) -> None:
    from playwright.sync_api import expect

    # the last chunk fails twice (1-2 s, then 2-4 s apart): the others are spoken meanwhile, so
    # the page must show the progress between the start and the end
    text = story(8_200, seed=21) + " The keeper slept. [[fail-attempts:2]] The ships came home."
    total = len(chunk_text(text))
    assert total >= 3

    page.goto(site)
    page.fill("#story-id", f"story-page-{uuid.uuid4().hex[:8]}")
    page.select_option("#voice", "fable")
    page.fill("#text", text)
    page.evaluate(RECORD_CHUNKS)
    page.click("#speak")

    job = page.locator("#job")
    expect(page.locator("#message")).to_have_text("Started")
    expect(page.locator("#chunks")).to_have_text(f"{total - 1} / {total}", timeout=60_000)
    assert job.get_attribute("data-status") in ("EXECUTING", "WAITING")  # not ended yet
    expect(page.locator("#audio")).to_be_hidden()
    expect(page.locator("#status")).to_have_text("Speaking")

    expect(page.locator("#audio-link")).to_be_visible(timeout=60_000)
    expect(page.locator("#chunks")).to_have_text(f"{total} / {total}")
    expect(page.locator("#status")).to_have_text("Done")
    assert job.get_attribute("data-status") == "COMPLETED"
    job_id = job.get_attribute("data-job")
    assert page.url == f"{site}/?job={job_id}"
    href = page.get_attribute("#audio-link", "href")
    assert href is not None and href.endswith(f"/media/audio/{job_id}.mp3")
    audio = page.request.get(f"{site}/media/audio/{job_id}.mp3")
    assert audio.ok and audio.body().startswith(b"ID3")

    seen = page.evaluate("window.chunksSeen")
    counts = [int(shown.split(" / ")[0]) for shown, _ in seen if re.fullmatch(r"\d+ / \d+", shown)]
    assert counts == sorted(counts), seen  # only forward
    between = [
        shown for shown, status in seen if shown not in (f"0 / {total}", f"{total} / {total}")
    ]
    assert between and all(status != "COMPLETED" for shown, status in seen if shown in between)

    # the job's own page (a reload, a shared link) follows the job again, now ended
    page.reload()
    expect(page.locator("#status")).to_have_text("Done")
    expect(page.locator("#chunks")).to_have_text(f"{total} / {total}")
    expect(page.locator("#audio-link")).to_have_attribute("href", href)


def test_a_story_already_in_progress_is_followed_not_started_again(
    site: str, page: Any, browser: Any
) -> None:
    from playwright.sync_api import expect

    story_id = f"story-twice-{uuid.uuid4().hex[:8]}"
    text = story(4_500, seed=22) + " [[fail-attempts:2]] The end."  # 3 to 6 seconds at least
    other = browser.new_page()
    try:
        for tab, typed in ((page, text), (other, "Something else.")):
            tab.goto(site)
            tab.fill("#story-id", story_id)
            tab.fill("#text", typed)
        page.click("#speak")
        expect(page.locator("#message")).to_have_text("Started")
        first = page.locator("#job").get_attribute("data-run")
        other.click("#speak")  # while the first job's run goes on
        expect(other.locator("#message")).to_have_text("Already in progress")
        assert other.locator("#job").get_attribute("data-run") == first
        expect(other.locator("#status")).to_have_text("Done", timeout=60_000)
    finally:
        other.close()
    expect(page.locator("#status")).to_have_text("Done", timeout=60_000)
