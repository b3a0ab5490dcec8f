"""Every server serves the browser client: `GET /sdk/realtime.js` (an ES module) and
`/sdk/realtime.global.js` (the same code as a plain script), to any page without a key, as
JavaScript that browsers cache and revalidate. What the client does in a browser is
tests/e2e/test_realtime_browser.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from conveyor.server import create_app
from conveyor.server.browser import module_source, plain_script

if TYPE_CHECKING:
    from conftest import Backend

NAMES = (
    "ConveyorError",
    "readStream",
    "retrieveRun",
    "subscribeToBatch",
    "subscribeToRun",
    "subscribeToRunsWithTag",
    "trigger",
)


@pytest.fixture
def web(backend: Backend) -> TestClient:
    return TestClient(create_app(backend.engine, rate_limit=False))


@pytest.mark.parametrize("path", ["/sdk/realtime.js", "/sdk/realtime.global.js"])
def test_the_client_is_javascript_any_page_may_load_without_a_key(
    web: TestClient, path: str
) -> None:
    answer = web.get(path, headers={"Origin": "https://app.example.com"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.headers["access-control-allow-origin"] == "*"  # module scripts load with CORS
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "subscribeToRun" in answer.text and "Last-Event-ID" in answer.text


def test_browsers_cache_it_and_revalidate_by_etag(web: TestClient) -> None:
    first = web.get("/sdk/realtime.js")
    assert first.headers["cache-control"] == "public, max-age=3600"
    etag = first.headers["etag"]
    again = web.get("/sdk/realtime.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = web.get("/sdk/realtime.global.js", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag


def test_it_is_no_route_of_the_api_document(web: TestClient) -> None:
    assert not any(path.startswith("/sdk") for path in web.get("/openapi.json").json()["paths"])


def test_the_module_exports_the_client_and_the_plain_script_defines_window_conveyor() -> None:
    module = module_source()
    for name in NAMES:
        assert f"  {name},\n" in module.rpartition("export {")[2]
    script = plain_script(module)
    assert "export " not in script and "import.meta" not in script
    assert script.startswith("(() => {\n") and script.endswith("})();\n")
    assert "globalThis.Conveyor = {" in script


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_both_forms_parse_as_what_they_claim_to_be(tmp_path: Path) -> None:
    module = module_source()
    (tmp_path / "realtime.mjs").write_text(module)
    (tmp_path / "realtime.js").write_text(plain_script(module))
    for name in ("realtime.mjs", "realtime.js"):  # a module, then a plain script
        checked = subprocess.run(
            ["node", "--check", str(tmp_path / name)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr
