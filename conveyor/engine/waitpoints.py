"""Waitpoints that something outside a run completes: tokens. Creating, completing (by key or
through a token's signed callback URL, which needs no key), reading and listing them. The routes
of conveyor/server/api/waitpoints.py and the client's `waitpoints` namespace are this part.

A run waits on a token through its durable calls (durable.py); completing the token resumes
it (transitions.py). The key signing callback URLs is made once per database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

from conveyor.durations import MAX_SECONDS
from conveyor.engine.events import Events
from conveyor.engine.transitions import DEFAULT_IDEMPOTENCY_TTL, Holder, Transitions
from conveyor.engine.views import json_text
from conveyor.errors import Conflict, InvalidRequest, NotFound, PayloadError
from conveyor.ids import new_id
from conveyor.serialization import json_problem
from conveyor.store import Row, Store


class Waitpoints:
    """Tokens (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float],
        events: Events,
        transitions: Transitions,
    ) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._transitions = transitions
        self._token_secret: bytes | None = None
        self.public_url: str | None = None  # where token callback URLs point (the API's base URL)

    def token_secret(self) -> bytes:
        """The key that signs token callback URLs (made once per database)."""
        secret = self._token_secret
        if secret is None:
            with self._store.transaction() as tx:
                tx.run("put_setting", name="token_secret", value=secrets.token_hex(32))
                row = tx.one("get_setting", name="token_secret")
            assert row is not None
            secret = self._token_secret = bytes.fromhex(row["value"])
        return secret

    def token_signature(self, token_id: str) -> str:
        return hmac.new(self.token_secret(), token_id.encode(), hashlib.sha256).hexdigest()[:32]

    def check_token_signature(self, token_id: str, signature: str) -> bool:
        # as bytes: compare_digest refuses str with non-ASCII characters, and a URL may hold any
        return hmac.compare_digest(
            self.token_signature(token_id).encode(), signature.encode("utf-8", "replace")
        )

    def create_token(
        self,
        env_id: str,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        tags: list[str] | None = None,
        run_id: str | None = None,
        key: str | None = None,
        holder: Holder | None = None,
        idempotency_key_ttl: float | None = None,
    ) -> dict[str, Any]:
        """A token: a waitpoint that something outside completes (or that times out). The same
        `idempotency_key` gives the same token for `idempotency_key_ttl` seconds (30 days by
        default), then a new one."""
        now = self._clock()
        if timeout is not None and not 0 <= timeout <= MAX_SECONDS:
            raise InvalidRequest(
                f"token timeout must be between 0 and {MAX_SECONDS:g} seconds (a century)"
            )
        if tags is not None and (
            len(tags) > 10 or any(not isinstance(t, str) or not 1 <= len(t) <= 128 for t in tags)
        ):
            raise InvalidRequest("at most 10 tags of 1 to 128 characters")
        with self._store.transaction() as tx:
            tx.lock(env_id)
            if run_id:
                self._transitions.check_holder(tx, run_id, holder)
            entry = tx.one("get_journal_entry", run_id=run_id, key=key) if run_id and key else None
            if entry is not None:  # made before this replay: the same token
                row = tx.one("get_waitpoint", env_id=env_id, id=json.loads(entry["value"])["id"])
            elif idempotency_key:
                row = tx.one("find_token_by_key", env_id=env_id, key=idempotency_key)
                expires = row["idempotency_expires_at"] if row is not None else None
                if row is not None and expires is not None and expires <= now:
                    tx.run("release_token_key", id=row["id"])
                    row = None
            else:
                row = None
            if row is None:
                token_id = new_id("token", now)
                tx.run(
                    "insert_waitpoint",
                    id=token_id,
                    env_id=env_id,
                    kind="token",
                    status="PENDING",
                    owner_run_id=run_id,
                    complete_at=now + timeout if timeout else None,
                    batch_id=None,
                    run_count=0,
                    done_count=0,
                    idempotency_key=idempotency_key,
                    tags=json_text(tags or []),
                    result=None,
                    now=now,
                    completed_at=None,
                )
                if idempotency_key:
                    ttl = (
                        DEFAULT_IDEMPOTENCY_TTL
                        if idempotency_key_ttl is None
                        else idempotency_key_ttl
                    )
                    tx.run("set_token_key_expiry", id=token_id, expires_at=now + ttl)
                row = tx.one("get_waitpoint", env_id=env_id, id=token_id)
            assert row is not None
            if run_id and key and entry is None:
                tx.run(
                    "insert_journal",
                    run_id=run_id,
                    key=key,
                    value=json_text({"id": row["id"]}),
                    waitpoint_id=None,
                    now=now,
                )
            view = self._token_view(row)
        return self._with_url(view)

    def complete_token(
        self, env_id: str, token_id: str, data: Any, *, holder: tuple[str, Holder] | None = None
    ) -> dict[str, Any]:
        """Complete a token with JSON `data`; runs waiting on it resume. `holder`: the run and
        attempt completing it from inside a run, which must hold its run."""
        try:
            json_text(data)
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"token data is not JSON: {exc}") from exc
        problem = json_problem(data, "token data")
        if problem:
            raise PayloadError(problem)
        now = self._clock()
        with self._store.transaction() as tx:
            tx.lock(env_id)
            if holder is not None:
                self._transitions.check_holder(tx, *holder)
            row = tx.one("get_waitpoint", env_id=env_id, id=token_id)
            if row is None or row["kind"] != "token":
                raise NotFound(f"token {token_id} not found")
            if row["status"] != "PENDING":
                raise Conflict(f"token {token_id} is already {row['status'].lower()}")
            envs = self._transitions.complete_waitpoints(
                tx, [(token_id, "COMPLETED", json_text({"ok": True, "output": data}))], now
            )
            row = tx.one("get_waitpoint", env_id=env_id, id=token_id)
        for env in envs:
            self._events.emit("available", env)
        return self._with_url(self._token_view(row))

    def token_environment(self, token_id: str) -> str:
        """The environment of a token (for its signed callback, which carries no key)."""
        with self._store.read() as tx:
            rows = tx.all("get_waitpoints_by_id", ids=[token_id])
        if not rows or rows[0]["kind"] != "token":
            raise NotFound(f"token {token_id} not found")
        env_id: str = rows[0]["env_id"]
        return env_id

    def get_token(self, env_id: str, token_id: str) -> dict[str, Any]:
        with self._store.read() as tx:
            row = tx.one("get_waitpoint", env_id=env_id, id=token_id)
        if row is None or row["kind"] != "token":
            raise NotFound(f"token {token_id} not found")
        return self._with_url(self._token_view(row))

    def list_tokens(
        self, env_id: str, *, status: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        if status is not None and status not in ("PENDING", "COMPLETED", "TIMED_OUT"):
            raise InvalidRequest("status is one of PENDING, COMPLETED, TIMED_OUT")
        if not 1 <= limit <= 1000:
            raise InvalidRequest("limit must be between 1 and 1000")
        with self._store.read() as tx:
            rows = tx.all(
                "list_tokens", env_id=env_id, status=status, cursor=cursor, limit=limit + 1
            )
        tokens = [self._with_url(self._token_view(r)) for r in rows[:limit]]
        return tokens, rows[limit - 1]["id"] if len(rows) > limit else None

    def token_waiters(self, env_id: str, token_ids: list[str]) -> dict[str, list[dict[str, str]]]:
        """The runs waiting on each token (`id`, `task_id`, `status`), oldest first; a token no
        run waits on is left out."""
        if not token_ids:
            return {}
        waiters: dict[str, list[dict[str, str]]] = {}
        with self._store.read() as tx:
            for row in tx.all("token_waiters", env_id=env_id, ids=token_ids):
                waiters.setdefault(row["waitpoint_id"], []).append(
                    {"id": row["id"], "task_id": row["task_id"], "status": row["status"]}
                )
        return waiters

    def token_url(self, token_id: str) -> str | None:
        if not self.public_url:
            return None
        base = self.public_url.rstrip("/")
        return (
            f"{base}/api/v1/waitpoints/tokens/{token_id}/callback/{self.token_signature(token_id)}"
        )

    def _with_url(self, view: dict[str, Any]) -> dict[str, Any]:
        view["url"] = self.token_url(view["id"])
        return view

    @staticmethod
    def _token_view(row: Row | None) -> dict[str, Any]:
        assert row is not None
        result = json.loads(row["result"]) if row["result"] else None
        return {
            "id": row["id"],
            "url": None,
            "status": row["status"],
            "idempotency_key": row["idempotency_key"],
            "tags": json.loads(row["tags"]),
            "timeout_at": row["complete_at"],
            "created_at": row["created_at"],
            "completed_at": row["completed_at"],
            "output": (result or {}).get("output"),
            "error": (result or {}).get("error"),
        }
