"""Signed webhooks: what Conveyor's alert webhooks carry in their `Conveyor-Signature` header,
and how a receiver checks it (docs/alerts.md).

    Conveyor-Signature: t=1767225600,v1=5257a869e7ec...(64 hex digits)

`v1` is the hex HMAC-SHA256, keyed by the channel's signing secret (`whsec_...`, shown once when
the channel is made), of the timestamp, a dot and the raw body: `f"{t}.".encode() + body`. The
timestamp lets a receiver refuse a body replayed long after it was sent.

```python
from conveyor import webhooks

@app.post("/conveyor")
async def alert(request: Request):
    body = await request.body()                       # the raw bytes, before any JSON parsing
    try:
        webhooks.verify(body, request.headers.get("Conveyor-Signature"), SECRET)
    except webhooks.SignatureError:
        return Response(status_code=400)
    event = json.loads(body)
```

`verify` raises `SignatureError` (a `ValueError`) rather than returning False, so a forgotten
check cannot pass silently. Pure standard library: a receiver needs nothing else of Conveyor.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Conveyor-Signature"
DEFAULT_TOLERANCE = 300.0  # seconds a signature stays valid, either side of the receiver's clock

__all__ = ["DEFAULT_TOLERANCE", "HEADER", "SignatureError", "sign", "verify"]


class SignatureError(ValueError):
    """The body's signature is missing, malformed, wrong (the body or the secret differs) or
    outside the tolerance (too old, or from the future)."""


def _raw(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _digest(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes | str, secret: str, *, timestamp: float | None = None) -> str:
    """The `Conveyor-Signature` header value for `body` signed with `secret` at `timestamp`
    (now by default)."""
    t = int(time.time() if timestamp is None else timestamp)
    return f"t={t},v1={_digest(_raw(body), secret, t)}"


def verify(
    body: bytes | str,
    header: str | None,
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check that `body` (the raw request body) was signed by Conveyor with `secret` within
    `tolerance` seconds of now; raise `SignatureError` saying why not. Several `v1=` entries
    (while a secret is rotated) pass when any matches. Compares in constant time."""
    if not secret:
        raise SignatureError("no signing secret given to check the signature with")
    if not header:
        raise SignatureError(f"no {HEADER} header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError(f"the {HEADER} header's timestamp is not a number") from None
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError(f"the {HEADER} header is not of the form t=<unix>,v1=<hex>")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(
            f"the signature's timestamp is {abs(current - timestamp):.0f}s away from now, "
            f"beyond the tolerance of {tolerance:g}s (a replayed or delayed body)"
        )
    expected = _digest(_raw(body), secret, timestamp)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise SignatureError("the signature does not match the body and secret")
