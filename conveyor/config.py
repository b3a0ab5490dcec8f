"""The project's config: `[tool.conveyor]` in pyproject.toml, or the same keys in conveyor.toml.

    [tool.conveyor]
    project = "proj_local"
    dirs = ["tasks"]
    max_duration = 300
    machine = "small-1x"
    stall_timeout = 30
    [tool.conveyor.retries]
    enabled_in_dev = true
    [tool.conveyor.retries.default]
    max_attempts = 3
    ...
    [tool.conveyor.realtime]
    cors_origins = ["https://app.example.com"]
    [tool.conveyor.telemetry]
    exporter = "otlp"
    endpoint = "http://collector:4318"

Loading never raises anything but ConfigError, whose message names the file and the key.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conveyor.errors import ConfigError
from conveyor.models import MACHINES, MachineName, RetryPolicy


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryDefaults(_Section):
    max_attempts: int = Field(default=3, ge=1, le=250)
    min_timeout_ms: int = Field(default=1000, ge=0)
    max_timeout_ms: int = Field(default=60_000, ge=0)
    factor: float = Field(default=2.0, gt=0)
    randomize: bool = True

    def policy(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())


class Retries(_Section):
    enabled_in_dev: bool = True
    default: RetryDefaults = RetryDefaults()


class Build(_Section):
    external: list[str] = Field(default_factory=list)


# scheme://host[:port]; `*.` before the host for its subdomains, `:*` for any port
_ORIGIN = re.compile(
    r"https?://(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])(:([0-9]{1,5}|\*))?"
)


def cors_origin_problem(origin: object) -> str | None:
    """Why `origin` cannot be an allowed CORS origin, or None: it must be "*" or
    scheme://host[:port], with `*.` before the host for its subdomains and `:*` for any port."""
    if origin == "*":
        return None
    if not isinstance(origin, str) or not _ORIGIN.fullmatch(origin.lower().rstrip("/")):
        return (
            f"{origin!r} is not an origin; write scheme://host[:port] such as "
            "https://app.example.com, http://localhost:* (any port), https://*.example.com "
            '(its subdomains), or "*" (any origin)'
        )
    return None


class Realtime(_Section):
    # origins whose pages may call the routes public access tokens open (docs/realtime.md)
    cors_origins: list[str] = Field(default_factory=list)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            problem = cors_origin_problem(origin)
            if problem:
                raise ValueError(problem)
        return value


TELEMETRY_EXPORTERS = ("otlp", "console", "none")
# a header's name, as HTTP has them (RFC 9110 token)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_INSTRUMENTATION = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class Telemetry(_Section):
    """OpenTelemetry export from the executors (conveyor/telemetry.py, docs/opentelemetry.md).
    The standard `OTEL_*` variables win over these values."""

    # "otlp" exports over OTLP/HTTP; "console" prints spans and logs (for a look at them);
    # None: export only if OTEL_* variables ask for it
    exporter: Literal["otlp", "console", "none"] | None = None
    # the collector's base URL: spans go to {endpoint}/v1/traces, logs to {endpoint}/v1/logs
    endpoint: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    service_name: str | None = Field(None, min_length=1, max_length=256)
    # instrumentations to enable in executors, by their `opentelemetry_instrumentor` entry point
    # name ("httpx", "requests", "sqlalchemy", ...)
    instrumentations: list[str] = Field(default_factory=list)
    sample_ratio: float = Field(1.0, ge=0, le=1)  # of traces started by a run
    logs: bool = True  # export task logs as OpenTelemetry log records

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be an http:// or https:// URL such as http://localhost:4318")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if "\n" in text or "\r" in text:
                raise ValueError(f"the value of header {name!r} has a line break")
        return value

    @field_validator("instrumentations")
    @classmethod
    def _instrumentations(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _INSTRUMENTATION.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not an instrumentation name; use the name of its "
                    'opentelemetry_instrumentor entry point, such as "httpx"'
                )
        return value


class Config(_Section):
    """A project's settings. `root` is the folder of the file they came from."""

    project: str = Field("proj_local", min_length=1, max_length=128)
    dirs: list[str] = Field(default_factory=lambda: ["tasks"], min_length=1)
    max_duration: float | None = Field(None, gt=0)
    machine: MachineName = "small-1x"
    concurrency_limit: int | None = Field(None, ge=1)  # environment-wide cap on executing runs
    # seconds an attempt may hold its executor's event loop (time.sleep, CPU-bound code in an
    # `async def`) before it fails and its executor is replaced (conveyor/worker/watchdog.py)
    stall_timeout: float = Field(30.0, gt=0, le=86_400)
    retries: Retries = Retries()
    build: Build = Build()
    realtime: Realtime = Realtime()
    telemetry: Telemetry = Telemetry()
    root: Path = Field(default=Path("."), exclude=True)
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("dirs")
    @classmethod
    def _dirs(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not entry or Path(entry).is_absolute() or ".." in Path(entry).parts:
                raise ValueError(f"each dir is a folder inside the project, got {entry!r}")
        return value

    def task_dirs(self) -> list[Path]:
        return [self.root / d for d in self.dirs]

    def check_dirs(self) -> None:
        """ConfigError unless every entry of `dirs` is a folder of the project."""
        missing = [d for d in self.dirs if not (self.root / d).is_dir()]
        if missing:
            raise ConfigError(
                f"{self.source}: dirs names {', '.join(missing)}, which is not a folder of "
                f"{self.root}; create it or fix dirs"
            )


_KNOWN: dict[str, set[str]] = {
    "": set(Config.model_fields) - {"root", "source"},
    "retries": set(Retries.model_fields),
    "retries.default": set(RetryDefaults.model_fields),
    "build": set(Build.model_fields),
    "realtime": set(Realtime.model_fields),
    "telemetry": set(Telemetry.model_fields),
}
_FREE = {"telemetry.headers"}  # tables of any keys (their model checks them)


def find_config_file(start: Path) -> tuple[Path, str] | None:
    """The nearest conveyor.toml, or pyproject.toml with [tool.conveyor], from `start` upwards."""
    for folder in [start, *start.parents]:
        candidate = folder / "conveyor.toml"
        if candidate.is_file():
            return candidate, ""
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text())
            except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
                return candidate, "tool.conveyor."  # let load_config report the syntax error
            if isinstance(data.get("tool"), dict) and "conveyor" in data["tool"]:
                return candidate, "tool.conveyor."
    return None


def load_config(start: Path | str = ".") -> Config:
    """The config of the project containing `start`; ConfigError when there is none or it is
    wrong."""
    start = Path(start).resolve()
    found = find_config_file(start)
    if found is None:
        raise ConfigError(
            f"no Conveyor config found in {start} or its parents; run `conveyor init` "
            "or add [tool.conveyor] to pyproject.toml"
        )
    path, prefix = found
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    section: Any = data.get("tool", {}).get("conveyor", {}) if prefix else data
    return parse_config(section, path, prefix)


def parse_config(section: Any, path: Path, prefix: str = "") -> Config:
    """Validate a config table; errors name the file and the full key."""
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: {prefix.rstrip('.') or 'the file'} must be a table")
    _check_keys(section, path, prefix, "")
    try:
        return Config.model_validate({**section, "root": path.parent, "source": path})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = prefix + ".".join(str(p) for p in error["loc"] if not isinstance(p, int))
        got = error.get("input")
        message = error["msg"]
        if error["type"] == "literal_error" and error["loc"][-1] == "machine":
            message = f"must be one of {', '.join(MACHINES)}"
        raise ConfigError(f"{path}: {key} {message.lower()} (got {got!r})") from exc


def _check_keys(table: dict[str, Any], path: Path, prefix: str, where: str) -> None:
    known = _KNOWN.get(where)
    if known is None:
        return
    for key, value in table.items():
        full = f"{where}.{key}" if where else key
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = (
                f"; did you mean {prefix}{where + '.' if where else ''}{close[0]}?"
                if close
                else f"; known keys: {', '.join(sorted(known))}"
            )
            raise ConfigError(f"{path}: unknown key {prefix}{full}{hint}")
        if isinstance(value, dict) and full not in _FREE:
            if full not in _KNOWN:
                raise ConfigError(f"{path}: {prefix}{full} must be a value, not a table")
            _check_keys(value, path, prefix, full)
