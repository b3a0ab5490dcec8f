"""A run's metadata and streams where people look, on SQLite and PostgreSQL: the dashboard's run
page shows the metadata as pretty JSON in its own card (a large one cut, with the whole as a
download) and each stream's text (text chunks joined, others one JSON a line, live or ended),
its live part sends new metadata and new chunks as soon as the run writes them, and
`conveyor runs show` prints the metadata (and `--json` carries it)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from conveyor.cli.main import main
from conveyor.dashboard import DashboardSettings, mount_dashboard
from conveyor.models import TriggerOptions
from conveyor.protocol import Heartbeat, MetadataCall, MetadataOp, StreamCall
from conveyor.server import create_app
from tests.integration.conftest import KEY, holder, serving

if TYPE_CHECKING:
    from tests.integration.conftest import Backend

LOCAL = ("127.0.0.1", 50000)


def executing(backend: Backend) -> str:
    run = backend.engine.tasks.trigger(backend.env.id, "hello", {}, TriggerOptions())
    backend.engine.workers.heartbeat("worker-1", Heartbeat())
    assert run.id in [
        a.run_id for a in backend.engine.workers.lease(backend.env.id, "worker-1", 10).attempts
    ]
    return run.id


def report(backend: Backend, run_id: str, *ops: tuple[Any, ...]) -> None:
    """Metadata ops of the run's code, as its worker relays them."""
    call = MetadataCall([MetadataOp(*op) for op in ops])
    backend.engine.durable.call(backend.env.id, run_id, call, **holder(backend.engine, run_id))


def write(
    backend: Backend, run_id: str, name: str, start: int, chunks: list[Any], done: bool = False
) -> None:
    """Chunks of a stream the run's code pipes, as its worker relays them."""
    call = StreamCall(name, start, chunks, done)
    backend.engine.durable.call(backend.env.id, run_id, call, **holder(backend.engine, run_id))


@pytest.fixture
def dashboard_app(backend: Backend) -> Any:
    app = create_app(backend.engine)
    mount_dashboard(
        app,
        backend.engine,
        DashboardSettings(local_env_id=backend.env.id, local_secret_key=backend.key),
    )
    return app


@pytest.fixture
def dashboard(dashboard_app: Any) -> Iterator[TestClient]:
    with TestClient(
        dashboard_app, base_url="http://127.0.0.1:3030", client=LOCAL, follow_redirects=False
    ) as client:
        yield client


def metadata_card(html: str) -> str:
    match = re.search(r'<pre class="json" id="run-metadata">(.*?)</pre>', html, re.S)
    assert match, "the page has no metadata card"
    return match.group(1)


def test_the_run_page_shows_the_metadata_pretty_in_its_own_card(
    dashboard: TestClient, backend: Backend
) -> None:
    run_id = executing(backend)
    plain = dashboard.get(f"/runs/{run_id}").text
    assert 'id="run-metadata"' not in plain  # no card while there is none

    report(backend, run_id, (1, "self", "set", "stage", "encoding"), (2, "self", "set", "done", 3))
    page = dashboard.get(f"/runs/{run_id}").text
    card = metadata_card(page)
    assert card == "{\n  &#34;stage&#34;: &#34;encoding&#34;,\n  &#34;done&#34;: 3\n}"
    assert "live, as the run reports it" in page

    backend.engine.runs.cancel(backend.env.id, run_id)
    assert "as the run left it" in dashboard.get(f"/runs/{run_id}").text


def test_a_large_metadata_shows_its_start_and_downloads_whole(
    dashboard: TestClient, backend: Backend
) -> None:
    run_id = executing(backend)
    big = {"log": [f"line {i:05d} " + "x" * 40 for i in range(3000)]}  # ~170 KB of JSON
    backend.engine.runs.update_metadata(backend.env.id, run_id, big)
    page = dashboard.get(f"/runs/{run_id}").text
    assert "Showing the start of" in page and "Download the metadata" in page
    assert len(metadata_card(page)) < 40 * 1024
    whole = dashboard.get(f"/runs/{run_id}/metadata.json")
    assert whole.status_code == 200 and whole.json() == big
    assert f'filename="{run_id}-metadata.json"' in whole.headers["content-disposition"]


def live_renders(app: Any, run_id: str, change: Any, until: str) -> list[str]:
    """The run's live part as the page receives it: every render until one holds `until` (20 s
    at most), with `change()` made once the first has come."""
    renders: list[str] = []
    changer = threading.Timer(0.2, change)
    with (
        serving(app) as url,
        httpx.Client(base_url=url, timeout=30) as http,
        http.stream("GET", f"/runs/{run_id}/stream") as response,
    ):
        assert response.status_code == 200
        started = time.monotonic()
        data: list[str] = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                data.append(line[6:])
                continue
            if line or not data:
                continue
            renders.append("\n".join(data))
            data = []
            if len(renders) == 1:
                changer.start()
            if until in renders[-1] or time.monotonic() - started > 20:
                break
    changer.join()
    return renders


def test_the_live_part_sends_the_metadata_the_run_reports(
    dashboard_app: Any, backend: Backend
) -> None:
    run_id = executing(backend)
    report(backend, run_id, (1, "self", "set", "done", 1))
    renders = live_renders(
        dashboard_app,
        run_id,
        lambda: report(backend, run_id, (2, "self", "increment", "done", 1)),
        until="&#34;done&#34;: 2",
    )
    seen = [metadata_card(html) for html in renders]
    assert "&#34;done&#34;: 1" in seen[0] and "&#34;done&#34;: 2" in seen[-1], seen


def stream_text(html: str, name: str) -> str:
    match = re.search(rf'<pre class="json" data-stream="{name}">(.*?)</pre>', html, re.S)
    assert match, f"the page does not show stream {name}"
    return match.group(1)


def test_the_run_page_shows_each_stream_live_then_ended(
    dashboard: TestClient, backend: Backend
) -> None:
    run_id = executing(backend)
    assert 'id="streams"' not in dashboard.get(f"/runs/{run_id}").text
    write(backend, run_id, "llm", 0, ["Once ", "upon <a> ", "time"])
    write(backend, run_id, "steps", 0, [{"step": 1}, {"step": 2}], done=True)
    found = backend.engine.runs.streams(backend.env.id, run_id)
    assert [(s.name, s.chunks, s.ended) for s in found] == [("llm", 3, False), ("steps", 2, True)]

    page = dashboard.get(f"/runs/{run_id}").text
    assert stream_text(page, "llm") == "Once upon &lt;a&gt; time"  # joined, and escaped
    assert stream_text(page, "steps") == "{&#34;step&#34;: 1}\n{&#34;step&#34;: 2}"
    assert "3 chunks · live" in page and "2 chunks · ended" in page

    backend.engine.runs.cancel(backend.env.id, run_id)
    assert "3 chunks · not ended (the run has)" in dashboard.get(f"/runs/{run_id}").text


def test_the_live_part_sends_the_chunks_the_run_writes(
    dashboard_app: Any, backend: Backend
) -> None:
    run_id = executing(backend)
    write(backend, run_id, "llm", 0, ["Hello"])
    renders = live_renders(
        dashboard_app,
        run_id,
        lambda: write(backend, run_id, "llm", 1, [", world"], done=True),
        until="Hello, world",
    )
    assert stream_text(renders[0], "llm") == "Hello"
    assert stream_text(renders[-1], "llm") == "Hello, world" and "2 chunks · ended" in renders[-1]


def test_runs_show_prints_the_metadata(live_server: str, backend: Backend) -> None:
    run_id = executing(backend)
    report(
        backend,
        run_id,
        (1, "self", "set", "stage", "uploading"),
        (2, "self", "append", "files", "a.mp3"),
    )
    connect = ["--api-url", live_server, "--secret-key", KEY]
    runner = CliRunner()
    shown = runner.invoke(main, ["runs", "show", run_id, *connect], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "Metadata" in shown.output and '"stage": "uploading"' in shown.output
    assert '"a.mp3"' in shown.output

    as_json = runner.invoke(
        main, ["runs", "show", run_id, "--json", *connect], catch_exceptions=False
    )
    assert json.loads(as_json.output)["metadata"] == {"stage": "uploading", "files": ["a.mp3"]}

    plain = backend.engine.tasks.trigger(backend.env.id, "hello", {}, TriggerOptions())
    without = runner.invoke(main, ["runs", "show", plain.id, *connect], catch_exceptions=False)
    assert "Metadata" not in without.output


def test_a_long_stream_shows_its_start(dashboard: TestClient, backend: Backend) -> None:
    run_id = executing(backend)
    write(backend, run_id, "log", 0, [f"line {i}\n" for i in range(2500)], done=True)
    page = dashboard.get(f"/runs/{run_id}").text
    shown = stream_text(page, "log")
    assert shown.startswith("line 0\nline 1\n") and "line 2499" not in shown
    assert "2500 chunks · ended" in page and "Showing the start of the stream" in page
