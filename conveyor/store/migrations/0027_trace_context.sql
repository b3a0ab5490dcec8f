-- The W3C trace context a run continues (OpenTelemetry export, docs/opentelemetry.md): the JSON
-- `{"traceparent": ..., "tracestate": ...}` of the span it was triggered in, or NULL. Its
-- attempts' spans join that trace wherever they run.
ALTER TABLE runs ADD COLUMN trace_context TEXT;
