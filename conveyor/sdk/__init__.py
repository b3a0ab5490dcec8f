"""What task code imports: task, schema_task, queue, retry, logger, context, results, errors.

Nothing here talks to a database. Inside a run, calls that reach the platform (trigger, logs)
go through the attempt's runtime, which the worker's executor installs; outside a run they
go through the HTTP client.
"""
