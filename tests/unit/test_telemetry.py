"""OpenTelemetry settings and propagation (conveyor/telemetry.py): `[tool.conveyor.telemetry]`
checked naming the key, the `OTEL_*` variables over the file, the W3C trace context a trigger
carries from the active span, and the ids a run's spans derive from the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from conveyor import telemetry
from conveyor.client._calls import traced
from conveyor.config import Config, parse_config
from conveyor.errors import ConfigError, InvalidRequest
from conveyor.models import TriggerOptions, dump_trigger_options

FILE = Path("/project/pyproject.toml")


def config(**table: object) -> Config:
    return parse_config({"project": "proj_x", "telemetry": table}, FILE, "tool.conveyor.")


def test_the_table_is_read_and_checked_naming_the_key() -> None:
    found = config(
        exporter="otlp",
        endpoint="https://collector.example.com:4318",
        headers={"Authorization": "Bearer abc"},
        service_name="billing",
        instrumentations=["httpx", "requests"],
        sample_ratio=0.5,
    ).telemetry
    assert found.exporter == "otlp" and found.headers == {"Authorization": "Bearer abc"}
    assert found.instrumentations == ["httpx", "requests"] and found.sample_ratio == 0.5
    bad = {
        "exporter": ("zipkin", "tool.conveyor.telemetry.exporter"),
        "endpoint": ("collector:4318", "tool.conveyor.telemetry.endpoint"),
        "headers": ({"bad name": "x"}, "tool.conveyor.telemetry.headers"),
        "instrumentations": (["a b"], "tool.conveyor.telemetry.instrumentations"),
        "sample_ratio": (1.5, "tool.conveyor.telemetry.sample_ratio"),
    }
    for key, (value, named) in bad.items():
        with pytest.raises(ConfigError) as caught:
            config(**{key: value})
        assert str(caught.value).startswith(f"{FILE}: {named}")
        assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"did you mean tool\.conveyor\.telemetry\.endpoint"):
        config(endpiont="http://x")


def test_without_file_or_variables_nothing_is_exported() -> None:
    assert not telemetry.settings(config(), {}).enabled
    assert not telemetry.settings(None, {}).enabled


def test_the_file_alone() -> None:
    found = telemetry.settings(
        config(exporter="otlp", endpoint="http://c:4318/", headers={"X-Key": "1"}), {}
    )
    assert found.exporter == "otlp"
    assert found.traces_endpoint == "http://c:4318/v1/traces"
    assert found.logs_endpoint == "http://c:4318/v1/logs"
    assert found.traces_headers == {"x-key": "1"} and found.service_name == "proj_x"
    assert telemetry.settings(config(exporter="otlp"), {}).traces_endpoint == (
        "http://localhost:4318/v1/traces"
    )


def test_the_variables_alone_and_over_the_file() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-key=2,api-key=a%20b",
        "OTEL_SERVICE_NAME": "from-env",
    }
    alone = telemetry.settings(None, env)
    assert alone.exporter == "otlp" and alone.traces_endpoint == "http://env:4318/v1/traces"
    assert alone.traces_headers == {"x-key": "2", "api-key": "a b"}
    assert alone.service_name is None  # the SDK's resource reads OTEL_SERVICE_NAME itself
    file = config(exporter="otlp", endpoint="http://file:4318", headers={"x-key": "1"})
    both = telemetry.settings(file, env | {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"})
    assert both.traces_endpoint == "http://t/x" and both.logs_endpoint == "http://env:4318/v1/logs"
    assert both.traces_headers["x-key"] == "2"
    named = telemetry.settings(file, {"OTEL_RESOURCE_ATTRIBUTES": "service.name=svc,team=a"})
    assert named.service_name is None
    assert not telemetry.settings(file, {"OTEL_SDK_DISABLED": "true"}).enabled
    assert not telemetry.settings(file, {"OTEL_TRACES_EXPORTER": "none"}).enabled
    assert not telemetry.settings(file, {"OTEL_LOGS_EXPORTER": "none"}).logs
    assert telemetry.settings(file, {"OTEL_TRACES_SAMPLER": "always_on"}).sample_ratio is None
    assert telemetry.settings(file, {}).sample_ratio == 1.0


def test_bad_variables_are_one_clear_line() -> None:
    for env, named in [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_HEADERS": "novalue"},
            "OTEL_EXPORTER_OTLP_HEADERS",
        ),
    ]:
        with pytest.raises(ConfigError, match=named):
            telemetry.settings(None, env)


def test_check_names_an_instrumentation_nobody_installed() -> None:
    assert telemetry.check(config(exporter="otlp", instrumentations=["httpx"]), {}).enabled
    with pytest.raises(ConfigError, match="instrumentations names nope, which no installed"):
        telemetry.check(config(exporter="otlp", instrumentations=["nope"]), {})


def test_a_trigger_carries_the_active_span_context() -> None:
    assert telemetry.current_trace_context() is None  # no active span
    assert traced({"tags": ["a"]}) == {"tags": ["a"]}
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        context = telemetry.current_trace_context()
        options = traced(dump_trigger_options({"tags": ["a"]}))
    ids = span.get_span_context()
    flags = int(ids.trace_flags)
    assert context == {"traceparent": f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{flags:02x}"}
    assert options == {"tags": ["a"], "trace_context": context}
    given = {"traceparent": telemetry.format_traceparent(5, 6)}
    with tracer.start_as_current_span("request"):
        assert traced({"trace_context": given})["trace_context"] == given  # given wins


def test_the_trace_context_option_is_checked() -> None:
    good = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "tracestate": "k=v"}
    parsed = TriggerOptions.model_validate({"trace_context": good})
    assert parsed.trace_context is not None and parsed.trace_context.tracestate == "k=v"
    zeros = {"traceparent": "00-" + "0" * 32 + "-" + "b" * 16 + "-01"}
    assert TriggerOptions.model_validate({"trace_context": zeros}).trace_context is None
    for bad in [{"traceparent": "01-xyz"}, {"traceparent": good["traceparent"], "other": "x"}]:
        with pytest.raises(InvalidRequest, match="trace_context"):
            dump_trigger_options({"trace_context": bad})


def test_w3c_parsing_and_derived_ids() -> None:
    text = telemetry.format_traceparent(0xABC, 0xDEF, 1)
    assert telemetry.parse_traceparent(text) == (0xABC, 0xDEF, 1)
    for bad in ["", "00-zz", "00-" + "0" * 32 + "-" + "1" * 16 + "-01", text + "-extra"]:
        assert telemetry.parse_traceparent(bad) is None
    assert telemetry.trace_context_of({"traceparent": text, "tracestate": "a=1"}) == {
        "traceparent": text,
        "tracestate": "a=1",
    }
    assert telemetry.trace_context_of({"traceparent": "junk"}) is None
    # the same on every worker, different per run and attempt, never zero
    assert telemetry.run_span_id("run_a") == telemetry.run_span_id("run_a")
    assert telemetry.run_span_id("run_a") != telemetry.run_span_id("run_b")
    assert telemetry.attempt_span_id("run_a", 1) != telemetry.attempt_span_id("run_a", 2)
    assert 0 < telemetry.run_trace_id("run_a") < 2**128


def test_a_run_ends_with_an_attempt_the_engine_will_not_retry() -> None:
    from conveyor.protocol import AttemptOutcome, AttemptSpec

    def spec(attempt: int, max_attempts: int) -> AttemptSpec:
        return AttemptSpec(
            "run_a", "t", attempt, "{}", max_attempts, None, "small-1x", [], {}, "q", None,
            "dev", False,
        )  # fmt: skip

    def ends(kind: str, attempt: int = 1, max_attempts: int = 3, **more: object) -> bool:
        return telemetry.run_ends(
            AttemptOutcome("run_a", attempt, kind, **more), spec(attempt, max_attempts)
        )  # type: ignore[arg-type]

    for kind in ("completed", "aborted", "payload_invalid", "timed_out", "system_failure"):
        assert ends(kind)
    assert not ends("failed") and not ends("crashed") and not ends("interrupted")
    assert ends("failed", 3) and ends("crashed", 3) and not ends("interrupted", 3)
    assert not ends("failed", 3, retry_at=1e12)  # catch_error asked for another attempt


def test_export_without_the_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    with pytest.raises(ConfigError) as caught:
        telemetry.check(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert "pip install 'conveyor[otel]'" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not telemetry.check(None, {}).enabled  # nothing asked for: nothing needed
