"""The JSON API's route class: a request body is parsed once and checked before any route sees it.

A body may nest at most a few levels more than the values it carries (`MAX_DEPTH`, see
conveyor/serialization.py) and must be Unicode text: a body nested a thousand levels deep, or
with a lone surrogate in a string, is refused with 422 here, before it can be stored and break
every page and API answer that shows it later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from conveyor.serialization import MAX_DEPTH, json_problem

# the envelope around a value: {"items": [{"payload": ...}]} or {"outcomes": [{"error": ...}]}
ENVELOPE_DEPTH = 4


class CheckedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            problem: str | None
            try:
                value = json.loads(await self.body())  # a JSONDecodeError becomes 400 malformed_json
            except RecursionError:  # thousands of levels: deeper than the parser goes
                value, problem = None, "the request body is nested thousands of levels deep"
            else:
                problem = json_problem(value, "the request body", limit=MAX_DEPTH + ENVELOPE_DEPTH)
            if problem:
                raise HTTPException(422, detail=f"{problem}; a payload, output or other value may nest "
                                                f"{MAX_DEPTH} levels")
            self._json = value
        return self._json


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(CheckedRequest(request.scope, request.receive))

        return route
