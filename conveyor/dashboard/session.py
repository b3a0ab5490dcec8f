"""The dashboard's session cookie: a small JSON document signed with HMAC-SHA256, sent back
HttpOnly and SameSite=Lax.

It carries the CSRF token every form repeats and, on `conveyor server`, who logged in (the
sha256 of their personal access token, never the token), the id of their session's row in the
database and which environment they view. The row is what makes logging out final: a copy of
the cookie kept from before names a row that is gone. Nothing is kept in server memory, so any
server of the same database accepts it. The signing
key is derived from the database's token secret; this module never sees a token in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

COOKIE = "conveyor_session"
DEFAULT_MAX_AGE = 7 * 86400.0


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Session:
    """What one browser's cookie says. `flash` is a message for the next page it shows."""

    csrf: str = field(default_factory=new_csrf)
    token_hash: str | None = None
    session_id: str | None = None
    user: str | None = None
    env_id: str | None = None
    expires: float = 0.0
    flash: str | None = None
    flash_kind: str = "info"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Turns a Session into a cookie value and back; a value not signed here, or past its
    expiry, reads as no session at all."""

    def __init__(self, secret: bytes, *, max_age: float = DEFAULT_MAX_AGE) -> None:
        # a key of its own: a token callback signature must never pass for a session's
        self._key = hmac.new(secret, b"conveyor dashboard session", hashlib.sha256).digest()
        self.max_age = max_age

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def dumps(self, session: Session) -> str:
        body = _b64(json.dumps(asdict(session), separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def loads(self, value: str | None, *, now: float) -> Session | None:
        if not value or "." not in value:
            return None
        body, signature = value.rsplit(".", 1)
        if not hmac.compare_digest(self._sign(body).encode(), signature.encode("utf-8", "replace")):
            return None
        try:
            data: Any = json.loads(_unb64(body))
            session = Session(**data)
        except (ValueError, TypeError):
            return None
        if session.expires and session.expires < now:
            return None
        return session
