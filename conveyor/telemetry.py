"""OpenTelemetry export: runs, attempts, steps, triggers and waits as spans, task logs as log
records, sent over OTLP/HTTP from the executors (docs/opentelemetry.md).

Two halves, both importing OpenTelemetry lazily so the core install needs none of it:

- propagation (`current_trace_context`, `parse_traceparent`), used by the client and the
  executors: a trigger made inside an active span carries its W3C trace context
  (`{"traceparent": ..., "tracestate": ...}`, the `trace_context` trigger option); the run keeps
  it, and its attempts' spans continue that trace. It needs only `opentelemetry-api`, and
  without it (or without an active span) a trigger carries nothing.
- export (`Settings`, `Exporter`, `AttemptTrace`), used by the executors when
  `[tool.conveyor.telemetry]` or the `OTEL_*` variables ask for it; it needs the SDK and the
  OTLP/HTTP exporter (`pip install 'conveyor[otel]'`).

The spans of a run form one tree wherever its attempts ran, because the ids that tie them are
derived from the run, not kept by a process:

    run            span id from the run id; parent: the trigger's span (its trace context), or
                   none, and then the trace id is derived from the run id too. Written when
                   the run ends by the attempt that ends it, from the run's creation on.
      attempt      span id from (run id, attempt number); written when the attempt ends, from
                   its first start (a suspended attempt goes on in a later process).
        step / trigger / wait / token / the task's own spans and instrumentations
                   made where the code runs; a journaled call replayed on resume makes none.

An attempt whose process is killed (`kill -9`) writes no attempt span: what it exported before
stays in the trace under its id, and the retry's attempt joins the same run span.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.config import Config, Telemetry
    from conveyor.protocol import AttemptOutcome, AttemptSpec

EXTRA_HINT = "pip install 'conveyor[otel]'"
DEFAULT_ENDPOINT = "http://localhost:4318"
EXPORT_DELAY_MS = 200  # a batch of spans or logs waits at most this long before it is sent
FLUSH_TIMEOUT_MS = 5_000

# W3C trace context, version 00 (what every OpenTelemetry SDK writes)
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_TRACESTATE = re.compile(r"[\x20-\x7e]{0,512}")

_log = logging.getLogger("conveyor.telemetry")


# -- propagation ---------------------------------------------------------------------------------

_api: Any = None  # opentelemetry's API modules once imported; False when it is not installed


def _otel_api() -> Any:
    global _api
    if _api is None:
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )

            _api = (trace, TraceContextTextMapPropagator())
        except ImportError:
            _api = False
    return _api


def current_trace_context() -> dict[str, str] | None:
    """The W3C trace context of the active OpenTelemetry span (`traceparent`, and `tracestate`
    when it has one), or None without opentelemetry-api or an active span."""
    api = _otel_api()
    if not api:
        return None
    trace, propagator = api
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagator.inject(carrier)
    return trace_context_of(carrier)


def trace_context_of(carrier: Mapping[str, Any]) -> dict[str, str] | None:
    """The valid W3C trace context among `carrier`'s entries (headers, or a run's stored
    context), or None."""
    parent = carrier.get("traceparent")
    if not isinstance(parent, str) or parse_traceparent(parent) is None:
        return None
    out = {"traceparent": parent}
    state = carrier.get("tracestate")
    if isinstance(state, str) and state and _TRACESTATE.fullmatch(state):
        out["tracestate"] = state
    return out


def parse_traceparent(text: str) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a W3C `traceparent`, or None if it is not a valid one."""
    match = TRACEPARENT.fullmatch(text.strip())
    if match is None:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(match[3], 16)


def format_traceparent(trace_id: int, span_id: int, flags: int = 1) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def _derived(*parts: object, bits: int) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[: bits // 8], "big") or 1


def run_trace_id(run_id: str) -> int:
    """The trace id of a run triggered outside any trace (the same on every worker)."""
    return _derived("conveyor.trace", run_id, bits=128)


def run_span_id(run_id: str) -> int:
    return _derived("conveyor.run", run_id, bits=64)


def attempt_span_id(run_id: str, attempt: int) -> int:
    return _derived("conveyor.attempt", run_id, attempt, bits=64)


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """What to export and where, from `[tool.conveyor.telemetry]` and the `OTEL_*` variables
    (which win). `exporter` "none" exports nothing."""

    exporter: str = "none"
    traces_endpoint: str = ""
    logs_endpoint: str = ""
    traces_headers: dict[str, str] = field(default_factory=dict)
    logs_headers: dict[str, str] = field(default_factory=dict)
    service_name: str | None = None  # None: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say
    instrumentations: tuple[str, ...] = ()
    sample_ratio: float | None = None  # None: OTEL_TRACES_SAMPLER says
    logs: bool = True

    @property
    def enabled(self) -> bool:
        return self.exporter != "none"


_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


def _env_url(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    if not _URL.fullmatch(value):
        raise ConfigError(f"{name}={value!r} is not an http:// or https:// URL")
    return value


def _env_headers(environ: Mapping[str, str], name: str) -> dict[str, str]:
    """`key1=value1,key2=value2` (values URL-encoded), as OTEL_EXPORTER_OTLP_HEADERS has them."""
    out: dict[str, str] = {}
    for part in environ.get(name, "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{name}: {part.strip()!r} is not key=value")
        out[unquote(key.strip()).lower()] = unquote(value.strip())
    return out


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() == "true"


def settings(config: Config | None, environ: Mapping[str, str] | None = None) -> Settings:
    """The telemetry settings of a project, the `OTEL_*` variables of `environ` (default: the
    process's) over its `[tool.conveyor.telemetry]`. ConfigError names a bad variable."""
    from conveyor.config import Telemetry

    environ = os.environ if environ is None else environ
    table: Telemetry = config.telemetry if config is not None else Telemetry()
    if _flag(environ, "OTEL_SDK_DISABLED"):
        return Settings()
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or None
    if exporter is not None and exporter not in ("otlp", "console", "none"):
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={exporter!r} is not supported; use otlp, console or none"
        )
    base_env = _env_url(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")
    traces_env = _env_url(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    logs_env = _env_url(environ, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
    if exporter is None:
        exporter = table.exporter
    if exporter is None:  # nothing in the file: the variables alone may ask for export
        exporter = "otlp" if (base_env or traces_env) else "none"
    if exporter == "none":
        return Settings()
    base = (base_env or table.endpoint or DEFAULT_ENDPOINT).rstrip("/")
    headers = {k.lower(): v for k, v in table.headers.items()}
    headers |= _env_headers(environ, "OTEL_EXPORTER_OTLP_HEADERS")
    logs_exporter = environ.get("OTEL_LOGS_EXPORTER", "").strip().lower()
    service = None
    resource_attributes = environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if not environ.get("OTEL_SERVICE_NAME", "").strip() and not re.search(
        r"(^|,)\s*service\.name\s*=", resource_attributes
    ):
        service = table.service_name or (config.project if config is not None else "conveyor")
    return Settings(
        exporter=exporter,
        traces_endpoint=traces_env or f"{base}/v1/traces",
        logs_endpoint=logs_env or f"{base}/v1/logs",
        traces_headers=headers | _env_headers(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
        logs_headers=headers | _env_headers(environ, "OTEL_EXPORTER_OTLP_LOGS_HEADERS"),
        service_name=service,
        instrumentations=tuple(table.instrumentations),
        sample_ratio=None if environ.get("OTEL_TRACES_SAMPLER", "").strip() else table.sample_ratio,
        logs=table.logs and logs_exporter != "none",
    )


def installed_instrumentations() -> dict[str, Any]:
    """The `opentelemetry_instrumentor` entry points installed, by name."""
    return {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}


def check(config: Config | None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings, checked before any executor starts: ConfigError (one line) when export is
    asked for but the `otel` extra is missing, or an instrumentation is not installed."""
    found = settings(config, environ)
    if not found.enabled:
        return found
    try:
        import opentelemetry.sdk.trace

        if found.exporter == "otlp":
            import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        raise ConfigError(
            "telemetry export is configured ([tool.conveyor.telemetry] or OTEL_* variables) "
            f"but the OpenTelemetry SDK is not installed: {EXTRA_HINT}"
        ) from None
    if found.instrumentations:
        known = installed_instrumentations()
        missing = [name for name in found.instrumentations if name not in known]
        if missing:
            where = f"{config.source}: " if config is not None and config.source else ""
            raise ConfigError(
                f"{where}tool.conveyor.telemetry.instrumentations names {', '.join(missing)}, "
                "which no installed package provides (pip install "
                f"opentelemetry-instrumentation-{missing[0]}); installed: "
                f"{', '.join(sorted(known)) or 'none'}"
            )
    return found


# -- export (executors) -------------------------------------------------------------------------

_SEVERITY = {"debug": 5, "info": 9, "log": 9, "warn": 13, "warning": 13, "error": 17}
_RUN_STATUS = {
    "completed": "COMPLETED",
    "failed": "FAILED",
    "aborted": "FAILED",
    "payload_invalid": "FAILED",
    "timed_out": "TIMED_OUT",
    "crashed": "CRASHED",
    "system_failure": "SYSTEM_FAILURE",
}


def _attribute(value: Any) -> Any:
    """A value as an OpenTelemetry attribute: text, number, bool, or a list of one of them;
    anything else as its JSON text."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def run_attributes(spec: AttemptSpec) -> dict[str, Any]:
    """The attributes every span and log record of an attempt carries."""
    values = {
        "conveyor.run.id": spec.run_id,
        "conveyor.task.id": spec.task_id,
        "conveyor.attempt": spec.attempt,
        "conveyor.environment": spec.environment,
        "conveyor.queue": spec.queue or None,
        "conveyor.machine": spec.machine or None,
        "conveyor.concurrency_key": spec.concurrency_key,
        "conveyor.batch.id": spec.batch_id,
        "conveyor.parent.id": spec.parent_id,
        "conveyor.root.id": spec.root_id,
        "conveyor.version": spec.version,
        "conveyor.tags": list(spec.tags) or None,
    }
    return {k: v for k, v in values.items() if v is not None}


class Exporter:
    """The OpenTelemetry providers of one executor process: a tracer and a logger provider with
    batch processors that send within EXPORT_DELAY_MS, registered as the global ones (so the
    task's own spans and the instrumentations use them), and the instrumentations enabled."""

    def __init__(self, found: Settings) -> None:
        from opentelemetry import _logs, trace
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import (
            BatchLogRecordProcessor,
            ConsoleLogRecordExporter,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        self.settings = found
        self._flush_lock = threading.Lock()
        self._flushing = self._flush_again = False
        resource = Resource.create(
            {"service.name": found.service_name} if found.service_name else {}
        )
        options: dict[str, Any] = {"resource": resource, "id_generator": _id_generator()}
        if found.sample_ratio is not None:
            options["sampler"] = ParentBased(TraceIdRatioBased(found.sample_ratio))
        self.tracer_provider = TracerProvider(**options)
        self.logger_provider = LoggerProvider(resource=resource)
        if found.exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            spans: Any = OTLPSpanExporter(
                endpoint=found.traces_endpoint, headers=found.traces_headers
            )
            logs: Any = OTLPLogExporter(endpoint=found.logs_endpoint, headers=found.logs_headers)
        else:
            spans, logs = (
                ConsoleSpanExporter(out=sys.stderr),
                ConsoleLogRecordExporter(out=sys.stderr),
            )
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(spans, schedule_delay_millis=EXPORT_DELAY_MS)
        )
        if found.logs:
            self.logger_provider.add_log_record_processor(
                BatchLogRecordProcessor(logs, schedule_delay_millis=EXPORT_DELAY_MS)
            )
        trace.set_tracer_provider(self.tracer_provider)
        _logs.set_logger_provider(self.logger_provider)
        self.tracer = self.tracer_provider.get_tracer("conveyor")
        self.logger = self.logger_provider.get_logger("conveyor")
        self.instrument(found.instrumentations)

    def instrument(self, names: tuple[str, ...]) -> None:
        """Enable the instrumentations named, each once; one that fails is reported on stderr
        and the others still run."""
        known = installed_instrumentations()
        for name in names:
            try:
                instrumentor = known[name].load()()
                if not instrumentor.is_instrumented_by_opentelemetry:
                    instrumentor.instrument(tracer_provider=self.tracer_provider)
            except Exception as exc:
                print(f"conveyor: instrumentation {name!r} not enabled: {exc}", file=sys.__stderr__)

    def sampled(self, trace_id: int) -> bool:
        """Whether a trace a run starts is sampled (the same answer on every worker)."""
        decision = self.tracer_provider.sampler.should_sample(None, trace_id, "run")
        return bool(decision.decision.is_sampled())

    def attempt(
        self, spec: AttemptSpec, redact: Callable[[str], str] | None = None
    ) -> AttemptTrace:
        return AttemptTrace(self, spec, redact)

    def flush(self) -> None:
        """Send what is waiting (blocking: call it off the event loop)."""
        self.tracer_provider.force_flush(FLUSH_TIMEOUT_MS)
        self.logger_provider.force_flush(FLUSH_TIMEOUT_MS)

    def flush_soon(self, in_thread: Callable[[Callable[[], None]], object]) -> None:
        """Send what is waiting now, on a thread `in_thread` starts: attempts that end while a
        flush runs share the one flush after it, so many ends make few exports."""
        with self._flush_lock:
            if self._flushing:
                self._flush_again = True
                return
            self._flushing = True
        in_thread(self._flush_while_asked)

    def _flush_while_asked(self) -> None:
        while True:
            try:
                self.flush()
            except Exception as exc:  # export is best effort; the next end flushes again
                _log.warning("OpenTelemetry flush failed: %s", exc)
            with self._flush_lock:
                if not self._flush_again:
                    self._flushing = False
                    return
                self._flush_again = False

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.flush()
            self.tracer_provider.shutdown()
            self.logger_provider.shutdown()


# the ids the next span takes (trace id, span id): a run's and an attempt's are derived from it
_fixed: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "conveyor_span_ids", default=None
)


def _id_generator() -> Any:
    """Random ids, except for the spans whose ids are derived from their run (`_with_ids`)."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class Ids(RandomIdGenerator):
        def generate_span_id(self) -> int:
            fixed = _fixed.get()
            return fixed[1] if fixed else super().generate_span_id()

        def generate_trace_id(self) -> int:
            fixed = _fixed.get()
            return fixed[0] if fixed else super().generate_trace_id()

    return Ids()


@contextlib.contextmanager
def _with_ids(trace_id: int, span_id: int) -> Iterator[None]:
    token = _fixed.set((trace_id, span_id))
    try:
        yield
    finally:
        _fixed.reset(token)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class AttemptTrace:
    """The spans and log records of one attempt in one executor process (an execution: a
    suspended attempt goes on in a later one, under the same attempt span id)."""

    def __init__(
        self, exporter: Exporter, spec: AttemptSpec, redact: Callable[[str], str] | None = None
    ) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        self._trace = trace
        self.exporter = exporter
        self.spec = spec
        # hides the environment's secret values in what an error says (worker/envvars.py)
        self.redact: Callable[[str], str] = redact or (lambda text: text)
        self.attributes = run_attributes(spec)
        parent = parse_traceparent((spec.trace_context or {}).get("traceparent", ""))
        self.parent = parent
        if parent is not None:
            self.trace_id, sampled = parent[0], bool(parent[2] & 1)
        else:
            self.trace_id = run_trace_id(spec.run_id)
            sampled = exporter.sampled(self.trace_id)
        self.flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        run_context = SpanContext(self.trace_id, run_span_id(spec.run_id), True, self.flags)
        self._run_parent = trace.set_span_in_context(NonRecordingSpan(run_context))
        started = spec.attempt_started_at or time.time()
        with _with_ids(self.trace_id, attempt_span_id(spec.run_id, spec.attempt)):
            self.attempt_span = exporter.tracer.start_span(
                f"attempt {spec.task_id}",
                context=self._run_parent,
                kind=trace.SpanKind.CONSUMER,
                attributes=self.attributes | {"conveyor.attempt.resumed": spec.resumed},
                start_time=_ns(started),
            )
        self.context = trace.set_span_in_context(self.attempt_span)

    def enter(self) -> None:
        """Make the attempt span the current one of the calling context (the attempt's own
        asyncio task: it needs no detaching)."""
        from opentelemetry import context

        context.attach(self.context)

    @contextlib.contextmanager
    def span(self, name: str, attributes: dict[str, Any] | None = None) -> Iterator[Any]:
        """A child span of the current one (a step, a trigger, a wait); an exception escaping it
        is recorded on it, and its status is ERROR."""
        values = self.attributes | {k: v for k, v in (attributes or {}).items() if v is not None}
        with self.exporter.tracer.start_as_current_span(
            name, attributes=values, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except (asyncio.CancelledError, GeneratorExit):
                # the attempt stopped here: suspended until a wait ends, canceled, or stopped
                span.set_attribute("conveyor.interrupted", True)
                raise
            except BaseException as exc:
                _record_error(
                    span,
                    {
                        "name": type(exc).__name__,
                        "message": self.redact(str(exc)),
                        "stack": self.redact("".join(traceback.format_exception(exc))),
                    },
                )
                raise

    def current_context(self) -> dict[str, str] | None:
        """The trace context of the current span, for a child run."""
        return current_trace_context()

    def log(self, level: str, message: str, attributes: dict[str, Any] | None, ts: float) -> None:
        """A log line of the attempt as an OpenTelemetry log record, in the current span (the
        attempt's, or a step's) when it belongs to this trace."""
        if not self.exporter.settings.logs:
            return
        from opentelemetry._logs import LogRecord, SeverityNumber

        current = self._trace.get_current_span().get_span_context()
        span = current if current.is_valid and current.trace_id == self.trace_id else None
        span_context = span or self.attempt_span.get_span_context()
        values = dict(self.attributes)
        for key, value in (attributes or {}).items():
            values[str(key)] = _attribute(value)
        values["conveyor.log.level"] = level
        number = _SEVERITY.get(level, 9)
        self.exporter.logger.emit(
            LogRecord(
                timestamp=_ns(ts),
                observed_timestamp=time.time_ns(),
                context=self._trace.set_span_in_context(self._trace.NonRecordingSpan(span_context)),
                severity_text=level.upper(),
                severity_number=SeverityNumber(number),
                body=message,
                attributes=values,
            )
        )

    def end(self, outcome: AttemptOutcome | None, *, final: bool, canceled: bool = False) -> None:
        """The attempt ended (`outcome`; None when it was canceled or taken back); `final`: its
        run ends with it, so the run span is written too."""
        from opentelemetry.trace import Status, StatusCode

        error = outcome.error if outcome is not None else None
        kind = outcome.kind if outcome is not None else ("canceled" if canceled else "stopped")
        self.attempt_span.set_attribute("conveyor.attempt.outcome", kind)
        if error:
            _record_error(self.attempt_span, error)
        elif outcome is not None and outcome.kind == "completed":
            self.attempt_span.set_status(Status(StatusCode.OK))
        self.attempt_span.end()
        if not final:
            return
        status = "CANCELED" if canceled else _RUN_STATUS.get(kind, kind.upper())
        parent_context: Any
        if self.parent is not None:
            parent_context = self._run_parent_of_trigger()
        else:
            from opentelemetry.context import Context

            parent_context = Context()
        started = self.spec.created_at or time.time()
        with _with_ids(self.trace_id, run_span_id(self.spec.run_id)):
            run = self.exporter.tracer.start_span(
                f"run {self.spec.task_id}",
                context=parent_context,
                kind=self._trace.SpanKind.CONSUMER,
                attributes={k: v for k, v in self.attributes.items() if k != "conveyor.attempt"}
                | {"conveyor.run.status": status, "conveyor.run.attempts": self.spec.attempt},
                start_time=_ns(started),
            )
        if error and not canceled:
            _record_error(run, error)
        elif status == "COMPLETED":
            run.set_status(Status(StatusCode.OK))
        run.end()

    def _run_parent_of_trigger(self) -> Any:
        from opentelemetry.trace import NonRecordingSpan, SpanContext
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        context = TraceContextTextMapPropagator().extract(self.spec.trace_context or {})
        if self._trace.get_current_span(context).get_span_context().is_valid:
            return context
        assert self.parent is not None
        remote = SpanContext(self.parent[0], self.parent[1], True, self.flags)
        return self._trace.set_span_in_context(NonRecordingSpan(remote))


def _record_error(span: Any, error: dict[str, Any]) -> None:
    from opentelemetry.trace import Status, StatusCode

    message = str(error.get("message") or "")
    span.set_status(Status(StatusCode.ERROR, f"{error.get('name', 'Error')}: {message}"))
    span.add_event(
        "exception",
        {
            "exception.type": str(error.get("name") or "Error"),
            "exception.message": message,
            "exception.stacktrace": str(error.get("stack") or ""),
        },
    )


def run_ends(outcome: AttemptOutcome, spec: AttemptSpec) -> bool:
    """Whether the run ends with this outcome, as far as its worker can tell (the engine decides:
    a failure is retried while attempts remain, unless catch_error skipped its retries)."""
    if outcome.kind in ("completed", "aborted", "payload_invalid", "timed_out", "system_failure"):
        return True
    if outcome.kind in ("failed", "crashed"):
        return outcome.retry_at is None and spec.attempt >= spec.max_attempts
    return False


def start(config: Config | None) -> Exporter | None:
    """The executor's exporter if export is configured; None otherwise, or when it cannot start
    (reported on stderr: the worker checked the settings before starting executors, so this is
    a deployed version's environment without the `otel` extra)."""
    try:
        found = settings(config)
        if not found.enabled:
            return None
        return Exporter(found)
    except ImportError:
        print(f"conveyor: telemetry not exported: {EXTRA_HINT}", file=sys.__stderr__)
    except ConfigError as exc:
        print(f"conveyor: telemetry not exported: {exc.message}", file=sys.__stderr__)
    return None
