"""The browser client (/sdk/realtime.js) in a real browser against a real `conveyor dev`: a page
on another origin follows a run live with a public token (callbacks and async iteration), the
runs of a tag and of a batch, reads a stream from its first chunk and resumes it without a gap
or a repeat after its connection is cut, triggers once with a trigger token, is refused without
retrying by a token that does not read the run, and the plain-script form defines
window.Conveyor. The tasks are tests/e2e/project/tasks/realtime.py."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from conveyor import Client
from tests.e2e.browser import browser_fixture, page_fixture  # noqa: F401 - fixtures
from tests.e2e.conftest import DevServer, wait_for

MODULE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>realtime</title>
<script type="module">
  import * as Conveyor from "{api}/sdk/realtime.js";
  window.C = Conveyor;
  window.ready = true;
</script></head><body></body></html>"""
PLAIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>realtime</title>
<script src="{api}/sdk/realtime.global.js"></script>
<script>window.C = window.Conveyor; window.ready = true;</script>
</head><body></body></html>"""


class Site:
    """A web page on an origin of its own (http://127.0.0.1:<port>, which `conveyor dev`
    allows), loading the browser client from the Conveyor server."""

    def __init__(self, api_url: str) -> None:
        pages = {"/": MODULE_PAGE.format(api=api_url), "/plain": PLAIN_PAGE.format(api=api_url)}

        class Pages(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.partition("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def open(self, page: Any, path: str = "/") -> None:
        page.goto(self.url + path)
        page.wait_for_function("window.ready === true")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class CuttingProxy:
    """A TCP proxy to the Conveyor server whose open connections can all be cut at once, as a
    network drops them; it keeps what the browser sent, to read its request headers."""

    def __init__(self, upstream: str) -> None:
        address = urlsplit(upstream)
        self.upstream = (address.hostname or "127.0.0.1", address.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = bytearray()
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                browser, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.open += [browser, server]
            threading.Thread(target=self._pump, args=(browser, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, browser, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, keep: bool) -> None:
        try:
            while data := source.recv(65536):
                if keep:
                    with self.lock:
                        self.sent += data
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        with self.lock:
            cut, self.open = self.open, []
        for sock in cut:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def requests(self, path_part: str) -> list[str]:
        """The heads of the GET requests the browser sent whose path holds `path_part`."""
        with self.lock:
            text = self.sent.decode("latin-1")
        return [
            head
            for head in text.split("\r\n\r\n")
            if head.lstrip().startswith("GET ") and path_part in head.partition("\r\n")[0]
        ]

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture(scope="module")
def client(dev: DevServer) -> Iterator[Client]:
    with dev.client() as c:
        yield c


@pytest.fixture(scope="module")
def site(dev: DevServer) -> Iterator[Site]:
    site = Site(dev.api_url)
    yield site
    site.close()


def reading(client: Client, run_id: str) -> str:
    return client.auth.create_public_token(read={"runs": [run_id]}, expires_in="10m")


def test_a_page_follows_a_run_live_with_a_public_token(
    client: Client, site: Site, page: Any
) -> None:
    run = client.trigger("progress", {"total": 8, "pause": 0.25})
    site.open(page)
    page.evaluate(
        """([runId, accessToken]) => {
          window.updates = [];
          C.subscribeToRun(runId, {
            accessToken,
            onUpdate: (run) => window.updates.push([run.status, run.metadata.done || 0]),
            onEnd: (run) => { window.ended = run; },
          });
        }""",
        [run.id, reading(client, run.id)],
    )
    page.wait_for_function("window.ended !== undefined", timeout=30_000)
    updates = page.evaluate("window.updates")
    ended = page.evaluate("window.ended")
    done = [count for _, count in updates]
    assert done == sorted(done), updates
    live = {count for status, count in updates if status == "EXECUTING" and 0 < count < 8}
    assert len(live) >= 3, updates  # seen as it went, not only at the end
    assert ended["status"] == "COMPLETED" and ended["metadata"]["done"] == 8
    assert ended["output"]["done"] == 8 and updates[-1] == ["COMPLETED", 8]


def test_a_subscription_is_also_an_async_iterator(client: Client, site: Site, page: Any) -> None:
    run = client.trigger("progress", {"total": 4, "pause": 0.1})
    site.open(page)
    statuses = page.evaluate(
        """async ([runId, accessToken]) => {
          const seen = [];
          for await (const run of C.subscribeToRun(runId, { accessToken })) seen.push(run.status);
          return seen;
        }""",
        [run.id, reading(client, run.id)],
    )
    assert statuses[-1] == "COMPLETED" and "COMPLETED" not in statuses[:-1]


def test_a_page_follows_the_runs_of_a_tag_and_of_a_batch(
    client: Client, site: Site, page: Any
) -> None:
    tag = f"page-{uuid.uuid4().hex[:8]}"
    site.open(page)
    page.evaluate(
        """([tag, accessToken]) => {
          window.tagged = {};
          window.stopTag = C.subscribeToRunsWithTag(tag, {
            accessToken,
            onUpdate: (run) => { window.tagged[run.id] = run.status; },
          });
        }""",
        [tag, client.auth.create_public_token(read={"tags": [tag]}, expires_in="10m")],
    )
    runs = [client.trigger("progress", {"total": 3, "pause": 0.05}, tags=[tag]) for _ in range(2)]
    wanted = {r.id: "COMPLETED" for r in runs}
    wait_for(lambda: page.evaluate("window.tagged") == wanted, timeout=30, what="tagged runs")
    page.evaluate("window.stopTag()")

    batch = client.tasks.batch_trigger(
        "progress", [{"payload": {"total": 2, "pause": 0.05}} for _ in range(3)]
    )
    token = client.auth.create_public_token(read={"batches": [batch.batch_id]}, expires_in="10m")
    ended = page.evaluate(
        """([batchId, accessToken]) => new Promise((resolve, reject) => {
          C.subscribeToBatch(batchId, { accessToken, onEnd: resolve, onError: reject });
        })""",
        [batch.batch_id, token],
    )
    assert sorted(r["id"] for r in ended) == sorted(r.id for r in batch.runs)
    assert {r["status"] for r in ended} == {"COMPLETED"}


def test_a_stream_is_read_from_the_first_chunk_and_resumed_after_its_connection_is_cut(
    dev: DevServer, client: Client, site: Site, page: Any
) -> None:
    proxy = CuttingProxy(dev.api_url)
    try:
        run = client.trigger("llm", {"tokens": 40, "pause": 0.1})
        site.open(page)
        page.evaluate(
            """([runId, accessToken, baseUrl]) => {
              window.chunks = [];
              C.readStream(runId, "llm", {
                baseUrl,
                accessToken,
                onChunk: (chunk) => window.chunks.push(chunk),
                onEnd: (end) => { window.streamEnd = end; },
                onError: (error) => { window.streamError = error.message; },
              });
            }""",
            [run.id, reading(client, run.id), proxy.url],
        )
        page.wait_for_function("window.chunks.length >= 5", timeout=30_000)
        proxy.cut()  # mid-stream: the page must open it again where it stopped
        page.wait_for_function("window.streamEnd || window.streamError", timeout=30_000)
        assert page.evaluate("window.streamError") is None
        assert page.evaluate("window.chunks") == [f"t{i} " for i in range(40)]  # once each
        assert page.evaluate("window.streamEnd") == {
            "run_id": run.id,
            "stream": "llm",
            "chunks": 40,
        }
        heads = proxy.requests(f"/api/v1/runs/{run.id}/streams/llm")
        assert len(heads) >= 2 and "last-event-id:" not in heads[0].lower()
        resumed = [h for h in heads[1:] if "last-event-id: " in h.lower()]
        assert resumed, heads  # the reconnection said where it stopped
    finally:
        proxy.close()


def test_a_trigger_token_triggers_once_from_the_page(client: Client, site: Site, page: Any) -> None:
    token = client.auth.create_trigger_token("progress", expires_in="5m")
    site.open(page)
    outcome = page.evaluate(
        """async (accessToken) => {
          const made = await C.trigger("progress", { total: 2, pause: 0.05 }, { accessToken });
          let last;
          const runs = C.subscribeToRun(made.id, { accessToken: made.public_access_token });
          for await (const run of runs) last = run;
          try {
            await C.trigger("progress", { total: 1 }, { accessToken });
            return { made, last, again: null };
          } catch (error) {
            return { made, last, again: [error.name, error.status, error.message] };
          }
        }""",
        token,
    )
    assert outcome["made"]["task_id"] == "progress" and not outcome["made"]["is_cached"]
    assert outcome["last"]["id"] == outcome["made"]["id"]
    assert outcome["last"]["status"] == "COMPLETED"
    name, status, message = outcome["again"]
    assert (name, status) == ("ConveyorError", 401) and "used already" in message


def test_a_token_that_does_not_read_the_run_is_refused_without_retrying(
    client: Client, site: Site, page: Any
) -> None:
    run = client.trigger("progress", {"total": 1})
    other = client.trigger("progress", {"total": 1})
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    site.open(page)
    error = page.evaluate(
        """([runId, accessToken]) => new Promise((resolve) => {
          C.subscribeToRun(runId, {
            accessToken,
            onError: (error) => resolve([error.name, error.status, error.code, error.message]),
          });
        })""",
        [run.id, reading(client, other.id)],
    )
    assert error[:3] == ["ConveyorError", 403, "forbidden"]
    assert "does not read run" in error[3]
    page.wait_for_timeout(1500)
    assert len([url for url in asked if url.endswith(f"/runs/{run.id}/subscribe")]) == 1


def test_the_plain_script_defines_window_conveyor(client: Client, site: Site, page: Any) -> None:
    run = client.trigger("progress", {"total": 1})
    client.runs.poll(run.id, timeout=30)
    site.open(page, "/plain")
    status = page.evaluate(
        """async ([runId, accessToken]) => (await C.retrieveRun(runId, { accessToken })).status""",
        [run.id, reading(client, run.id)],
    )
    assert status == "COMPLETED"
