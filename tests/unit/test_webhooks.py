"""`conveyor.webhooks`: the signature a webhook alert carries, and its check by a receiver."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from conveyor import webhooks

SECRET = "whsec_test-secret"
BODY = b'{"id":"alertdl_1","event":"run.failed"}'
NOW = 1_800_000_000


def test_a_signed_body_verifies() -> None:
    header = webhooks.sign(BODY, SECRET, timestamp=NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v1={expected}"
    webhooks.verify(BODY, header, SECRET, now=NOW + 10)
    webhooks.verify(BODY.decode(), header, SECRET, now=NOW)  # a str body is its UTF-8


@pytest.mark.parametrize(
    ("body", "secret", "says"),
    [
        (BODY + b" ", SECRET, "does not match"),
        (BODY.replace(b"failed", b"fixed!"), SECRET, "does not match"),
        (BODY, "whsec_another", "does not match"),
    ],
)
def test_a_tampered_body_or_another_secret_is_refused(body: bytes, secret: str, says: str) -> None:
    header = webhooks.sign(BODY, SECRET, timestamp=NOW)
    with pytest.raises(webhooks.SignatureError, match=says):
        webhooks.verify(body, header, secret, now=NOW)


def test_an_old_or_future_signature_is_refused_beyond_the_tolerance() -> None:
    header = webhooks.sign(BODY, SECRET, timestamp=NOW)
    webhooks.verify(BODY, header, SECRET, now=NOW + 300)
    with pytest.raises(webhooks.SignatureError, match="tolerance of 300s"):
        webhooks.verify(BODY, header, SECRET, now=NOW + 301)
    with pytest.raises(webhooks.SignatureError, match="tolerance"):
        webhooks.verify(BODY, header, SECRET, now=NOW - 301)
    webhooks.verify(BODY, header, SECRET, now=NOW + 3000, tolerance=3600)


def test_the_timestamp_is_signed_too() -> None:
    header = webhooks.sign(BODY, SECRET, timestamp=NOW)
    forged = header.replace(f"t={NOW}", f"t={NOW + 100}")
    with pytest.raises(webhooks.SignatureError, match="does not match"):
        webhooks.verify(BODY, forged, SECRET, now=NOW + 100)


@pytest.mark.parametrize(
    "header",
    [None, "", "v1=abc", f"t={NOW}", "t=soon,v1=abc", "garbage", f"t={NOW},v0=abc"],
)
def test_a_missing_or_malformed_header_is_refused(header: str | None) -> None:
    with pytest.raises(webhooks.SignatureError):
        webhooks.verify(BODY, header, SECRET, now=NOW)


def test_any_of_several_signatures_may_match_and_an_empty_secret_never_does() -> None:
    good = webhooks.sign(BODY, SECRET, timestamp=NOW).split(",")[1]
    webhooks.verify(BODY, f"t={NOW},v1={'0' * 64},{good}", SECRET, now=NOW)
    with pytest.raises(webhooks.SignatureError, match="no signing secret"):
        webhooks.verify(BODY, webhooks.sign(BODY, "", timestamp=NOW), "", now=NOW)


def test_a_signature_error_is_a_value_error() -> None:
    assert issubclass(webhooks.SignatureError, ValueError)
