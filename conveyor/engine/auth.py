"""Public access tokens: signed tokens a backend hands to a browser, which read a few runs or
trigger one task once, and nothing else. The routes of conveyor/server/api/auth.py and the
client's `auth` namespace are this part.

    public token    reads the runs it names: by id, by tag, by batch or by task
    trigger token   triggers its task once (the first trigger that makes a run uses it up)

A token is a JWT (HS256) signed with a secret made once per database, so every server of one
database accepts the tokens of the others. Its claims: `env` (the environment), `kind`
("public" or "trigger"), `scopes` (`{"read": {"runs": [...], ...}}` or `{"trigger": {"tasks":
[...]}}`), `iat`, `exp` and `jti`. A token is not stored: it is valid until it expires, and a
used trigger token is a row of `spent_tokens`, written in the transaction that made its run
(`spend`, called by tasks.py), so two servers cannot both use it. This part never logs a token.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from conveyor.durations import iso, parse_duration
from conveyor.errors import AuthenticationError, Forbidden, InvalidRequest
from conveyor.ids import new_id
from conveyor.models import Run
from conveyor.store import Store, Tx

ISSUER = "conveyor"
ALGORITHM = "HS256"
SECRET_SETTING = "public_token_secret"
SCOPE_KINDS = ("runs", "tags", "batches", "tasks")
MAX_SCOPE_ITEMS = 100  # per kind: a token travels in every request's headers
MAX_SCOPE_TEXT = 256
DEFAULT_EXPIRY = 15 * 60.0
MAX_EXPIRY = 30 * 86400.0  # a token cannot be revoked: it must end
RUN_TOKEN_EXPIRY = 24 * 3600.0  # the public token a trigger token's trigger answers with
CLOCK_MARGIN = 3600.0  # how far apart the clocks of servers of one database may be

TokenKind = Literal["public", "trigger"]


@dataclass(frozen=True, slots=True)
class PublicToken:
    """What a verified token allows. A public token reads the runs of `env_id` it names: a run
    in `runs`, a run carrying one of `tags`, in one of `batches` or of one of `tasks`. A trigger
    token triggers one of `triggers` (its task) once."""

    id: str
    env_id: str
    kind: TokenKind
    expires_at: float
    runs: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    batches: frozenset[str] = frozenset()
    tasks: frozenset[str] = frozenset()
    triggers: frozenset[str] = frozenset()

    def may_read(self, run: Run) -> bool:
        """Whether this token reads `run` (a run of its environment)."""
        return self.kind == "public" and (
            run.id in self.runs
            or not self.tags.isdisjoint(run.tags)
            or (run.batch_id is not None and run.batch_id in self.batches)
            or run.task_id in self.tasks
        )

    def may_trigger(self, task_id: str) -> bool:
        return self.kind == "trigger" and task_id in self.triggers

    def describe(self) -> str:
        """What the token opens, for error messages: "runs run_1; tags user-42"."""
        if self.kind == "trigger":
            return "triggering " + ", ".join(sorted(self.triggers)) + " once"
        named = [
            f"{kind} {', '.join(sorted(values))}"
            for kind, values in (
                ("runs", self.runs),
                ("tags", self.tags),
                ("batches", self.batches),
                ("tasks", self.tasks),
            )
            if values
        ]
        return "reading " + "; ".join(named)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: float


class Auth:
    """Issuing and verifying public access tokens (see the module docstring)."""

    def __init__(self, store: Store, *, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._secret: bytes | None = None

    @property
    def has_secret(self) -> bool:
        """Whether the secret is loaded, so verifying a token needs no query."""
        return self._secret is not None

    def secret(self) -> bytes:
        """The key signing public tokens (made once per database; not the key of token
        callback URLs: a leak of one opens nothing of the other)."""
        secret = self._secret
        if secret is None:
            with self._store.transaction() as tx:
                tx.run("put_setting", name=SECRET_SETTING, value=secrets.token_hex(32))
                row = tx.one("get_setting", name=SECRET_SETTING)
            assert row is not None
            secret = self._secret = bytes.fromhex(row["value"])
        return secret

    def create_public_token(
        self, env_id: str, read: Any, expires_in: float | str | None = None
    ) -> IssuedToken:
        """A token reading the runs `read` names: `{"runs": [...], "tags": [...], "batches":
        [...], "tasks": [...]}`, at least one of them; InvalidRequest naming the field."""
        scopes = read_scopes(read)
        return self._issue(env_id, "public", {"read": scopes}, expiry(expires_in))

    def create_trigger_token(
        self, env_id: str, task_id: Any, expires_in: float | str | None = None
    ) -> IssuedToken:
        """A token triggering `task_id` once. The task need not be defined yet."""
        task = _scope_text(task_id, "task")
        return self._issue(env_id, "trigger", {"trigger": {"tasks": [task]}}, expiry(expires_in))

    def run_token(self, env_id: str, run_id: str) -> IssuedToken:
        """A public token reading one run, for the caller who made it with a trigger token."""
        return self._issue(env_id, "public", {"read": {"runs": [run_id]}}, RUN_TOKEN_EXPIRY)

    def _issue(
        self, env_id: str, kind: TokenKind, scopes: dict[str, Any], seconds: float
    ) -> IssuedToken:
        now = self._clock()
        expires_at = math.floor(now + seconds)
        claims = {
            "iss": ISSUER,
            "env": env_id,
            "kind": kind,
            "scopes": scopes,
            "iat": math.floor(now),
            "exp": expires_at,
            "jti": new_id("tok", now),
        }
        return IssuedToken(jwt.encode(claims, self.secret(), algorithm=ALGORITHM), expires_at)

    def verify(self, token: str) -> PublicToken:
        """What `token` allows; AuthenticationError (401) when it is malformed, signed by another
        database, or expired."""
        try:
            claims = jwt.decode(
                token,
                self.secret(),
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # times are checked below against the engine's clock
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "exp", "iat", "jti"],
                },
            )
        except jwt.InvalidSignatureError:
            raise AuthenticationError(
                "this public access token was not signed by this Conveyor server (or it was "
                "changed); ask your backend for a new one"
            ) from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise AuthenticationError(
                "malformed public access token: send the token `auth.create_public_token` or "
                "`auth.create_trigger_token` returned, whole, as `Authorization: Bearer <token>`"
            ) from None
        verified = _token(claims)
        if verified is None:
            raise AuthenticationError(
                "malformed public access token: its claims are not Conveyor's"
            )
        if verified.expires_at <= self._clock():
            raise AuthenticationError(
                f"this {verified.kind} token expired at {iso(verified.expires_at)}; "
                "ask your backend for a new one"
            )
        return verified


def spend(tx: Tx, token: PublicToken, task_id: str, now: float) -> None:
    """Use a trigger token up, in the transaction triggering `task_id` with it: the first
    trigger that commits uses it, any other is AuthenticationError (401). On PostgreSQL a second
    server inserting the same row waits for the first's transaction, then finds it."""
    if not token.may_trigger(task_id):
        raise Forbidden(f"this token allows {token.describe()}, not triggering {task_id!r}")
    # long after: a server whose clock is behind still refuses the token for its expiry
    tx.run("forget_spent_tokens", before=now - CLOCK_MARGIN)
    spent = tx.run(
        "spend_token", id=token.id, env_id=token.env_id, expires_at=token.expires_at, now=now
    )
    if not spent:
        raise AuthenticationError(
            "this trigger token was used already: a trigger token triggers once; "
            "ask your backend for a new one"
        )


def expiry(expires_in: Any, name: str = "expires_in") -> float:
    """Seconds a token lives: `expires_in` as seconds or a duration ("15m", "1h"), 1 second to
    30 days; DEFAULT_EXPIRY when None."""
    if expires_in is None:
        return DEFAULT_EXPIRY
    try:
        seconds = parse_duration(expires_in, name=name)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    if not 1 <= seconds <= MAX_EXPIRY:
        raise InvalidRequest(
            f"{name} must be from 1 second to 30 days (a token cannot be revoked, so it must "
            f"end), got {seconds:g} seconds"
        )
    return seconds


def read_scopes(read: Any) -> dict[str, list[str]]:
    """`read` checked: a mapping of runs, tags, batches and tasks to lists of names, at least one
    name in all; InvalidRequest naming the field (`read.tags[2]: ...`)."""
    if not isinstance(read, Mapping):
        raise InvalidRequest(
            'read must be an object such as {"runs": ["run_..."], "tags": ["user-42"]}'
        )
    unknown = sorted(str(kind) for kind in read if kind not in SCOPE_KINDS)
    if unknown:
        raise InvalidRequest(
            f"read.{unknown[0]}: unknown scope; a public token reads " + ", ".join(SCOPE_KINDS)
        )
    scopes: dict[str, list[str]] = {}
    for kind in SCOPE_KINDS:
        values = read.get(kind)
        if values is None:
            continue
        if isinstance(values, str) or not isinstance(values, list | tuple | set | frozenset):
            raise InvalidRequest(f"read.{kind} must be a list of {kind}, got {values!r:.80}")
        if len(values) > MAX_SCOPE_ITEMS:
            raise InvalidRequest(
                f"read.{kind} names {len(values)} {kind}; a token names at most "
                f"{MAX_SCOPE_ITEMS} of each (a tag names many runs at once)"
            )
        names = [_scope_text(v, f"read.{kind}[{i}]") for i, v in enumerate(values)]
        if names:
            scopes[kind] = list(dict.fromkeys(names))
    if not scopes:
        raise InvalidRequest(
            "read names nothing: give at least one run id, tag, batch id or task id to read"
        )
    return scopes


def _scope_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_SCOPE_TEXT:
        raise InvalidRequest(
            f"{name} must be a string of 1 to {MAX_SCOPE_TEXT} characters, got {value!r:.80}"
        )
    return value


def _token(claims: dict[str, Any]) -> PublicToken | None:
    """The token the claims describe, or None when they are not of a Conveyor token."""
    env, kind, scopes = claims.get("env"), claims.get("kind"), claims.get("scopes")
    jti, exp = claims.get("jti"), claims.get("exp")
    if not (isinstance(env, str) and isinstance(jti, str) and isinstance(scopes, dict)):
        return None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None

    def names(section: Any, kind: str) -> frozenset[str]:
        values = section.get(kind, []) if isinstance(section, dict) else []
        if not isinstance(values, list):
            return frozenset()
        return frozenset(v for v in values if isinstance(v, str))

    if kind == "public":
        read = scopes.get("read")
        return PublicToken(
            jti,
            env,
            "public",
            float(exp),
            runs=names(read, "runs"),
            tags=names(read, "tags"),
            batches=names(read, "batches"),
            tasks=names(read, "tasks"),
        )
    if kind == "trigger":
        return PublicToken(
            jti, env, "trigger", float(exp), triggers=names(scopes.get("trigger"), "tasks")
        )
    return None


def looks_like_token(credential: str) -> bool:
    """Whether a bearer credential is a public access token (a JWT) rather than a key: keys
    start with `cv_`, a JWT's header with `eyJ` (`{"` in base64)."""
    return credential.startswith("eyJ") and credential.count(".") == 2
