"""Lifecycle hooks that append one line per call to hooks.log, so tests can count them."""

from pathlib import Path

HOOKS = Path(__file__).resolve().parent.parent / "hooks.log"


def record(line: str) -> None:
    with HOOKS.open("a") as f:
        f.write(line + "\n")


def on_failure(payload, error, ctx):
    record(f"on_failure {ctx.run.id} {error.code}")


def on_success(payload, output, ctx):
    record(f"on_success {ctx.run.id}")


def on_cancel(payload, ctx):
    record(f"on_cancel {ctx.run.id}")


def on_start(payload, ctx):
    record(f"on_start {ctx.run.id}")
