"""The JSON API's route class: a request body is parsed once and checked before any route sees it,
and a query parameter the route does not take is refused (422 naming it), as a misspelt body
key is: `?stauts=FAILED` must not silently list every run.

A body may nest at most a few levels more than the values it carries (`MAX_DEPTH`, see
conveyor/serialization.py) and must be Unicode text: a body nested a thousand levels deep, or
with a lone surrogate in a string, is refused with 422 here, before it can be stored and break
every page and API answer that shows it later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, get_args, get_origin

from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from conveyor.serialization import MAX_DEPTH, json_problem

# the envelope around a value: {"items": [{"payload": ...}]} or {"outcomes": [{"error": ...}]}
ENVELOPE_DEPTH = 4


class CheckedRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            problem: str | None
            try:
                value = json.loads(
                    await self.body()
                )  # a JSONDecodeError becomes 400 malformed_json
            except RecursionError:  # thousands of levels: deeper than the parser goes
                value, problem = None, "the request body is nested thousands of levels deep"
            else:
                problem = json_problem(value, "the request body", limit=MAX_DEPTH + ENVELOPE_DEPTH)
            if problem:
                raise HTTPException(
                    422,
                    detail=f"{problem}; a payload, output or other value may nest "
                    f"{MAX_DEPTH} levels",
                )
            self._json = value
        return self._json


def _query_names(dependant: Dependant) -> dict[str, bool]:
    """The query parameters a route takes, by name: True for one that may repeat (a list)."""
    names = {param.alias: _is_list(param.field_info.annotation) for param in dependant.query_params}
    for inner in dependant.dependencies:
        names.update(_query_names(inner))
    return names


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) in (list, tuple, set):
        return True
    return any(
        _is_list(arg) for arg in get_args(annotation) if get_origin(annotation) is not Annotated
    )


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        known = _query_names(self.dependant)

        async def route(request: Request) -> Response:
            unknown = sorted(set(request.query_params) - set(known))
            if unknown:
                takes = f"; it takes {', '.join(sorted(known))}" if known else "; it takes none"
                raise HTTPException(422, detail=f"unknown query parameter {unknown[0]!r}{takes}")
            repeated = sorted(
                name
                for name in set(request.query_params)
                if not known[name] and len(request.query_params.getlist(name)) > 1
            )
            if repeated:
                raise HTTPException(
                    422,
                    detail=f"query parameter {repeated[0]!r} is given more than once; "
                    "it takes one value",
                )
            return await handler(CheckedRequest(request.scope, request.receive))

        return route
