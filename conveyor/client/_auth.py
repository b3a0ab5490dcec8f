"""`client.auth`: public access tokens, for both clients and the default one (`from conveyor
import auth`; docs/realtime.md). A backend makes them with its secret key and hands them to a
browser, which reads the runs a public token names, or triggers a task once with a trigger
token."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.client._calls import Call
from conveyor.client._namespaces import Namespace, S, operation
from conveyor.errors import InvalidRequest

SCOPES = ("runs", "tags", "batches", "tasks")


def _expires_in(value: float | str | None) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise InvalidRequest(
        f"expires_in must be seconds or a duration such as '15m' or '1h', got {value!r}"
    )


def _token(data: Any) -> str:
    return str(data["token"])


class Auth(Namespace[S]):
    """`client.auth`: make public access tokens for the key's environment. They are signed by
    the server and expire (15 minutes by default, at most 30 days); they cannot be revoked."""

    @operation
    def create_public_token(
        self,
        *,
        read: Mapping[str, Sequence[str]],
        expires_in: float | str | None = None,
    ) -> Call[str]:
        """A token reading the runs `read` names: `{"runs": [run_id], "tags": ["user-42"],
        "batches": [batch_id], "tasks": ["generate-audio"]}` (any of them, at least one name).
        It opens `runs.retrieve` and the realtime routes for those runs, and nothing else."""
        if not isinstance(read, Mapping):
            raise InvalidRequest(
                'read must be a dict such as {"runs": [run_id], "tags": ["user-42"]}'
            )
        body_read: dict[str, list[str]] = {}
        for kind, names in read.items():
            if kind not in SCOPES:
                raise InvalidRequest(
                    f"read.{kind}: unknown scope; a public token reads {', '.join(SCOPES)}"
                )
            if isinstance(names, str) or not isinstance(names, Sequence | set | frozenset):
                raise InvalidRequest(f"read.{kind} must be a list of {kind}, got {names!r:.80}")
            body_read[kind] = list(names)
        body = {"read": body_read, "expires_in": _expires_in(expires_in)}
        return Call("POST", "/api/v1/auth/public-tokens", _token, body=body)

    @operation
    def create_trigger_token(
        self, task_id: str, *, expires_in: float | str | None = None
    ) -> Call[str]:
        """A token triggering `task_id` once: the first trigger with it makes a run, any other
        is refused (AuthenticationError). The trigger's answer carries a public token reading
        that run (`public_access_token`)."""
        if not isinstance(task_id, str) or not task_id:
            raise InvalidRequest(f"task id must be a non-empty string, got {task_id!r}")
        body = {"task": task_id, "expires_in": _expires_in(expires_in)}
        return Call("POST", "/api/v1/auth/trigger-tokens", _token, body=body)
