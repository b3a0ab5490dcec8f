"""Waitpoint tokens in the test's world (memory.py): made by a run (once per journal key, once
per idempotency key while it holds), completed by the test's `testing.complete_token(...)`
completions as a run waits for them, by a run, or by their timeout on the virtual clock."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

from conveyor.errors import Conflict, NotFound
from conveyor.serialization import to_json_value
from conveyor.testing.records import JournalRecord, RunState, Waitpoint, as_stored

if TYPE_CHECKING:
    from conveyor.testing.memory import World

KEY_TTL = 30 * 86400.0  # seconds an idempotency key holds by default, as on the platform
TIMEOUT_RESULT = {
    "ok": False,
    "error": {
        "name": "WaitpointTimeout",
        "code": "timed_out",
        "message": "The token was not completed in time.",
    },
}


class Tokens:
    """The world's tokens, and their idempotency keys."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.keys: dict[str, str] = {}  # idempotency key -> token id
        self.key_expiry: dict[str, float] = {}  # token id -> when its key stops holding

    def create(
        self,
        run: RunState,
        key: str,
        timeout: float | None,
        idempotency_key: str | None,
        tags: list[str] | None,
        idempotency_key_ttl: float | None = None,
    ) -> Waitpoint:
        world = self.world
        entry = run.journal.get(key)
        if entry is not None:
            return world.waitpoints[entry.value["id"]]
        existing = self.keys.get(idempotency_key) if idempotency_key else None
        if existing is not None and world.now >= self.key_expiry.get(existing, math.inf):
            existing = None  # its key expired: a new token
        if existing is not None:
            waitpoint = world.waitpoints[existing]
        else:
            waitpoint = world.new_waitpoint(
                "token",
                complete_at=world.now + timeout if timeout else None,
                idempotency_key=idempotency_key,
                tags=list(tags or []),
            )
            if idempotency_key:
                self.keys[idempotency_key] = waitpoint.id
                ttl = KEY_TTL if idempotency_key_ttl is None else idempotency_key_ttl
                self.key_expiry[waitpoint.id] = world.now + ttl
            if waitpoint.complete_at is not None:
                world.at(
                    waitpoint.complete_at,
                    lambda: world.complete(waitpoint, "TIMED_OUT", copy.deepcopy(TIMEOUT_RESULT)),
                )
        world.journal(run, key, {"id": waitpoint.id})
        return waitpoint

    def get(self, token_id: str) -> Waitpoint:
        waitpoint = self.world.waitpoints.get(token_id)
        if waitpoint is None or waitpoint.kind != "token":
            raise NotFound(f"token {token_id} not found")
        return waitpoint

    def wait(self, run: RunState, key: str, token_id: str) -> JournalRecord:
        """A run waits for a token: the first of the test's completions that matches it
        completes it now."""
        world = self.world
        waitpoint = self.get(token_id)
        if waitpoint.status == "PENDING":
            for completion in world.completions:
                if completion.matches(waitpoint):
                    completion.used_by = waitpoint.id
                    data = completion.data
                    if callable(data):
                        data = data(waitpoint.token())
                    world.complete(
                        waitpoint,
                        "COMPLETED",
                        {"ok": True, "output": to_json_value(data, "token data")},
                    )
                    break
        world.journal(run, key, {"token_id": token_id}, waitpoint)
        return run.journal[key]

    def complete(self, token_id: str, data: Any) -> None:
        waitpoint = self.get(token_id)
        if waitpoint.status != "PENDING":
            raise Conflict(f"token {token_id} is already {waitpoint.status.lower()}")
        self.world.complete(waitpoint, "COMPLETED", {"ok": True, "output": as_stored(data)})
