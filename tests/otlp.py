"""A real OTLP/HTTP receiver for tests: a small HTTP server on 127.0.0.1 that takes
`POST /v1/traces` and `POST /v1/logs` (protobuf, gzip or not), decodes them with
opentelemetry-proto's own messages and keeps the spans and log records it got.

    with Receiver() as receiver:
        ... export to receiver.url ...
        spans = receiver.wait_spans(lambda spans: any(s.name == "run echo" for s in spans))
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes_of(items: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in items}


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    start: float
    end: float
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    scope: str


@dataclass
class LogRecord:
    body: Any
    severity_text: str
    severity_number: int
    trace_id: str
    span_id: str
    timestamp: float
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class Receiver:
    """See the module docstring. `requests` counts the posts of each path."""

    spans: list[Span] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    headers: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                try:
                    answer = receiver.take(self.path, body, dict(self.headers))
                except Exception as exc:  # a body the receiver cannot decode: the test sees 400
                    self.send_response(400)
                    self.end_headers()
                    self.wfile.write(str(exc).encode())
                    return
                if answer is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def take(self, path: str, body: bytes, headers: dict[str, str]) -> bytes | None:
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1
            self.headers.append({k.lower(): v for k, v in headers.items()})
        if path == "/v1/traces":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans = [
                Span(
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    kind=span.kind,
                    start=span.start_time_unix_nano / 1e9,
                    end=span.end_time_unix_nano / 1e9,
                    attributes=attributes_of(span.attributes),
                    status_code=span.status.code,
                    status_message=span.status.message,
                    events=[(e.name, attributes_of(e.attributes)) for e in span.events],
                    resource=attributes_of(resource_spans.resource.attributes),
                    scope=scope_spans.scope.name,
                )
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ]
            with self._lock:
                self.spans.extend(spans)
            return ExportTraceServiceResponse().SerializeToString()
        if path == "/v1/logs":
            logs_request = ExportLogsServiceRequest()
            logs_request.ParseFromString(body)
            records = [
                LogRecord(
                    body=value_of(record.body),
                    severity_text=record.severity_text,
                    severity_number=record.severity_number,
                    trace_id=record.trace_id.hex(),
                    span_id=record.span_id.hex(),
                    timestamp=record.time_unix_nano / 1e9,
                    attributes=attributes_of(record.attributes),
                    resource=attributes_of(resource_logs.resource.attributes),
                )
                for resource_logs in logs_request.resource_logs
                for scope_logs in resource_logs.scope_logs
                for record in scope_logs.log_records
            ]
            with self._lock:
                self.logs.extend(records)
            return ExportLogsServiceResponse().SerializeToString()
        return None

    def wait_spans(
        self, ready: Callable[[list[Span]], bool], timeout: float = 20, what: str = "spans"
    ) -> list[Span]:
        return self._wait(lambda: list(self.spans), ready, timeout, what)

    def wait_logs(
        self, ready: Callable[[list[LogRecord]], bool], timeout: float = 20, what: str = "logs"
    ) -> list[LogRecord]:
        return self._wait(lambda: list(self.logs), ready, timeout, what)

    def _wait(self, read: Callable[[], list[Any]], ready: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = read()
            if ready(got):
                return got
            if time.monotonic() > deadline:
                names = sorted({getattr(item, "name", str(item)[:80]) for item in got})
                raise AssertionError(f"no {what} in {timeout}s; the receiver has {names}")
            time.sleep(0.05)

    def run_spans(self, run_id: str) -> list[Span]:
        """The spans of one run (its run, attempts, and what they made)."""
        with self._lock:
            return [s for s in self.spans if s.attributes.get("conveyor.run.id") == run_id]
