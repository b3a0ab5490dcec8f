"""Environments and their secret keys: finding or making an environment, authenticating a key
(with a short cache, as every request authenticates), and the environment-wide concurrency cap.

Which projects and environments a person may reach is accounts.py's business; this part answers
"which environment does this key open", and never touches runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.engine.accounts import Accounts, hash_secret
from conveyor.engine.events import Events
from conveyor.errors import NotFound
from conveyor.ids import new_id
from conveyor.store import Row, Store

AUTH_CACHE_SECONDS = 5.0

hash_key = hash_secret  # keys are stored as their sha256 (conveyor.engine.accounts)


@dataclass(frozen=True, slots=True)
class Environment:
    id: str
    project: str
    slug: str
    kind: str
    concurrency_limit: int | None


class Environments:
    """Environments and keys (see the module docstring)."""

    def __init__(self, store: Store, *, clock: Callable[[], float], events: Events) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._auth_cache: dict[str, tuple[float, Environment | None]] = {}

    def ensure(
        self, project: str, slug: str, kind: str, concurrency_limit: int | None = None
    ) -> Environment:
        """The environment `slug` of `project`, made (with its project) when missing."""
        now = self._clock()
        with self._store.transaction() as tx:
            tx.lock(f"environment:{project}:{slug}")
            row = tx.one("find_environment", project=project, slug=slug)
            if row is None:
                env_id = new_id("env")
                tx.run(
                    "insert_environment",
                    id=env_id,
                    project=project,
                    slug=slug,
                    kind=kind,
                    concurrency_limit=concurrency_limit,
                    now=now,
                )
                Accounts.adopt_project(tx, project, now)  # every environment belongs to a project
                row = tx.one("get_environment", id=env_id)
            elif concurrency_limit is not None and row["concurrency_limit"] != concurrency_limit:
                tx.run("set_environment_limit", id=row["id"], concurrency_limit=concurrency_limit)
                row = tx.one("get_environment", id=row["id"])
        assert row is not None
        return _env(row)

    def get(self, env_id: str) -> Environment:
        with self._store.read() as tx:
            row = tx.one("get_environment", id=env_id)
        if row is None:
            raise NotFound(f"environment {env_id} not found")
        return _env(row)

    def set_limit(self, env_id: str, limit: int | None) -> None:
        """The cap on executing runs across the environment (None: no cap)."""
        with self._store.transaction() as tx:
            tx.run("set_environment_limit", id=env_id, concurrency_limit=limit)
        self._events.emit("available", env_id)

    # -- keys -----------------------------------------------------------------------------

    def add_api_key(self, env_id: str, secret: str) -> None:
        with self._store.transaction() as tx:
            tx.run(
                "insert_api_key",
                key_hash=hash_key(secret),
                env_id=env_id,
                prefix=secret[:12],
                now=self._clock(),
            )

    def revoke_api_key(self, secret: str) -> bool:
        """Revoke a key: it stops authenticating here at once, and on other servers of the same
        database within AUTH_CACHE_SECONDS. False when no live key matched."""
        digest = hash_key(secret)
        with self._store.transaction() as tx:
            revoked = tx.run("revoke_api_key", key_hash=digest, now=self._clock()) > 0
        self._auth_cache.pop(digest, None)
        return revoked

    def authenticate(self, secret: str) -> Environment | None:
        """The environment of a live key. Answers from memory for a few seconds after a lookup
        (every request authenticates), so a revoked key stops working within
        AUTH_CACHE_SECONDS."""
        digest = hash_key(secret)
        now = time.monotonic()
        cached = self._auth_cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self._store.read() as tx:
            row = tx.one("environment_for_key", key_hash=digest)
        env = _env(row) if row else None
        if len(self._auth_cache) > 10_000:
            self._auth_cache.clear()
        self._auth_cache[digest] = (now + AUTH_CACHE_SECONDS, env)
        return env

    def cached(self, secret: str) -> tuple[bool, Environment | None]:
        """(known, environment) from the authentication cache alone, without a query."""
        cached = self._auth_cache.get(hash_key(secret))
        if cached is not None and cached[0] > time.monotonic():
            return True, cached[1]
        return False, None

    def forget_keys(self) -> None:
        """Drop the authentication cache (keys were rotated or revoked elsewhere)."""
        self._auth_cache.clear()


def _env(row: Row) -> Environment:
    return Environment(
        row["id"], row["project"], row["slug"], row["kind"], row["concurrency_limit"]
    )
