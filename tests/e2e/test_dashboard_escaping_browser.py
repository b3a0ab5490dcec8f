"""Values that users and tasks control are shown as text on every page of the dashboard: a tag,
a payload, an output, metadata, a concurrency key, an error message, a log line and its
attributes, a step's name and a token's tags and data, each carrying markup that would run a
script or make htmx send a request if it left its context. The test opens each page in a real
browser and checks that nothing ran and nothing was requested, and that the text is shown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import Client
from tests.e2e.browser import browser_fixture, page_fixture  # noqa: F401 - fixtures
from tests.e2e.conftest import DevServer, wait_for


@pytest.fixture(scope="module")
def client(dev: DevServer) -> Iterator[Client]:
    """The dashboard is the one of `conveyor dev`: its runs are made through its own key."""
    with dev.client() as c:
        yield c


CANARY = "/canary"
HOSTILE = [
    # leave a double-quoted attribute, then add an element and an htmx attribute
    f'"><img src=x onerror="window.pwned=1"><b hx-get="{CANARY}/dq" hx-trigger="load">x</b>',
    # leave a single-quoted attribute; htmx attributes inside an unquoted tag
    f"'><img src=x onerror='window.pwned=2'> a hx-post={CANARY}/sq hx-trigger=load b",
    # raw script and markup meant for a text context
    f"</pre></td><script>window.pwned=3</script><div hx-get={CANARY}/txt hx-trigger=load>",
]


@pytest.fixture
def watched(page: Any) -> Any:
    """The page, recording every request the browser makes that the dashboard itself did not ask
    for."""
    strays: list[str] = []
    page.on(
        "request",
        lambda request: (
            strays.append(f"{request.method} {request.url}")
            if CANARY in request.url
            or request.url.startswith("http://x")
            or request.url.endswith("/x")
            else None
        ),
    )
    page.strays = strays
    return page


def assert_inert(page: Any, text: str) -> None:
    page.wait_for_timeout(600)  # htmx triggers `load` at once; give stray requests time to leave
    assert page.evaluate("window.pwned") is None, "a value of the run ran a script"
    assert page.strays == [], f"a value of the run made the browser send requests: {page.strays}"
    assert text in page.inner_text("body"), "the value is not shown as text"


@pytest.mark.parametrize("text", HOSTILE, ids=["double-quote", "single-quote", "text"])
def test_values_of_a_run_are_shown_as_text(
    dev: DevServer, client: Client, watched: Any, text: str
) -> None:
    ok = client.trigger(
        "hostile",
        {"text": text},
        tags=[text[:128]],
        metadata={"note": text},
        concurrency_key=text[:200],
    )
    failed = client.trigger("hostile", {"text": text, "fail": True}, tags=[text[:128]])
    assert client.runs.poll(ok.id, timeout=30).status == "COMPLETED"
    assert client.runs.poll(failed.id, timeout=30).status == "FAILED"
    wait_for(
        lambda: any(line.message == text for line in client.runs.logs(ok.id)),
        what="the run's log line",
    )

    for run_id in (ok.id, failed.id):
        watched.goto(f"{dev.api_url}/runs/{run_id}")
        assert_inert(watched, text)
        watched.locator(
            ".wf-row[data-span]"
        ).first.hover()  # the trace rows carry span attributes in a title
        assert_inert(watched, text)
        assert '"Über"' in watched.inner_text("#logs"), (
            "a log attribute's non-ASCII text is shown escaped"
        )
    watched.goto(f"{dev.api_url}/runs")
    assert_inert(watched, text[:40])


@pytest.mark.parametrize("text", HOSTILE, ids=["double-quote", "single-quote", "text"])
def test_values_of_a_token_are_shown_as_text(
    dev: DevServer, client: Client, watched: Any, text: str
) -> None:
    done = client.waitpoints.create_token(tags=[text[:128]])
    client.waitpoints.complete_token(done.id, {"answer": text})
    client.waitpoints.create_token(tags=[text[:128]])  # one still waiting
    watched.goto(f"{dev.api_url}/tokens")
    assert_inert(watched, text[:40])
