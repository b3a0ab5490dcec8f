"""The browser client, served by every server: `GET /sdk/realtime.js` (an ES module) and
`GET /sdk/realtime.global.js` (the same code as a plain script defining `window.Conveyor`).

The code is conveyor/server/static/realtime.js, package data; the plain script is made from it
here: the module's closing exports cut, `import.meta.url` read as the script's own URL, the rest
wrapped in a function. Both need no key (they hold no secret), may be loaded from any origin
(`<script type="module">` fetches with CORS) and are cached by browsers, revalidated by ETag.
This module never reads a key nor touches the engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request, Response

EXPORTS_MARKER = "// The module's exports:"
MEDIA_TYPE = "text/javascript; charset=utf-8"
# an hour, then a revalidation (a 304 while the server runs the same Conveyor version)
CACHE_CONTROL = "public, max-age=3600"

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    etag: str

    @classmethod
    def of(cls, text: str) -> Asset:
        body = text.encode()
        return cls(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def module_source() -> str:
    """The ES module, as shipped."""
    return files("conveyor.server").joinpath("static/realtime.js").read_text(encoding="utf-8")


def plain_script(module: str) -> str:
    """The module as a plain script: no exports, its own URL from `document.currentScript`
    (read while the script first runs), its names kept inside a function."""
    code, marker, _ = module.partition(EXPORTS_MARKER)
    if not marker or "import.meta.url" not in code:
        raise RuntimeError("conveyor/server/static/realtime.js lost its exports marker")
    code = code.replace(
        "import.meta.url", "(document.currentScript ? document.currentScript.src : location.href)"
    )
    return "(() => {\n" + code.rstrip() + "\n})();\n"


@cache
def assets() -> dict[str, Asset]:
    module = module_source()
    return {"realtime.js": Asset.of(module), "realtime.global.js": Asset.of(plain_script(module))}


def _serve(request: Request, asset: Asset) -> Response:
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": asset.etag,
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=MEDIA_TYPE, headers=headers)


@router.get("/sdk/realtime.js")
async def realtime_module(request: Request) -> Response:
    """The browser client as an ES module (`import { subscribeToRun } from ".../sdk/realtime.js"`);
    it also defines `window.Conveyor`."""
    return _serve(request, assets()["realtime.js"])


@router.get("/sdk/realtime.global.js")
async def realtime_script(request: Request) -> Response:
    """The browser client as a plain script (`<script src=".../sdk/realtime.global.js">`)
    defining `window.Conveyor`."""
    return _serve(request, assets()["realtime.global.js"])
