"""The SMTP settings of the alert sender, from CONVEYOR_SMTP_URL, _FROM and _STARTTLS."""

from __future__ import annotations

import pytest

from conveyor.errors import ConfigError
from conveyor.platform.alerts import SmtpSettings


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONVEYOR_SMTP_URL", "CONVEYOR_SMTP_FROM", "CONVEYOR_SMTP_STARTTLS"):
        monkeypatch.delenv(name, raising=False)


def test_no_url_is_no_smtp() -> None:
    assert SmtpSettings.from_environment() is None


def test_a_url_with_a_login_starttls_and_a_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_SMTP_URL", "smtp://alerts%40shop.example:p%40ss@mail.example:587")
    monkeypatch.setenv("CONVEYOR_SMTP_FROM", "conveyor@shop.example")
    monkeypatch.setenv("CONVEYOR_SMTP_STARTTLS", "1")
    settings = SmtpSettings.from_environment()
    assert settings == SmtpSettings(
        host="mail.example",
        port=587,
        username="alerts@shop.example",
        password="p@ss",
        sender="conveyor@shop.example",
        ssl=False,
        starttls=True,
    )


def test_smtps_defaults_to_port_465_and_plain_smtp_to_25(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_SMTP_URL", "smtps://mail.example")
    settings = SmtpSettings.from_environment()
    assert settings is not None and (settings.port, settings.ssl, settings.username) == (
        465,
        True,
        None,
    )
    monkeypatch.setenv("CONVEYOR_SMTP_URL", "smtp://mail.example")
    settings = SmtpSettings.from_environment()
    assert settings is not None and (settings.port, settings.starttls) == (25, False)
    assert settings.sender.startswith("conveyor@")


@pytest.mark.parametrize("url", ["http://mail.example", "mail.example:25", "smtp://", "smtp://h:x"])
def test_a_malformed_url_is_one_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("CONVEYOR_SMTP_URL", url)
    with pytest.raises(ConfigError, match="CONVEYOR_SMTP_URL"):
        SmtpSettings.from_environment()
