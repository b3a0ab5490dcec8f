"""`idempotency_keys.create` (conveyor/sdk/idempotency.py): a key in the scope asked, the same
for the same run (and attempt), another for another; plain text inside a run is the run's."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import IdempotencyKey, InvalidRequest, idempotency_keys
from conveyor.sdk.context import (
    AttemptInfo,
    AttemptScope,
    Context,
    RunInfo,
    TaskInfo,
    enter_scope,
    leave_scope,
)
from conveyor.sdk.idempotency import scoped


def in_run(run_id: str, attempt: int, make: Any) -> Any:
    ctx = Context(RunInfo(run_id), AttemptInfo(attempt), TaskInfo("t"), "dev")
    token = enter_scope(AttemptScope(ctx, runtime=None))  # type: ignore[arg-type]
    try:
        return make()
    finally:
        leave_scope(token)


def test_each_scope_dedupes_what_it_says() -> None:
    def keys() -> dict[str, str]:
        return {s: idempotency_keys.create("k", scope=s) for s in ("run", "attempt", "global")}

    a1, a1_again = in_run("run_a", 1, keys), in_run("run_a", 1, keys)
    a2, b1 = in_run("run_a", 2, keys), in_run("run_b", 1, keys)
    assert a1 == a1_again  # deterministic: a replay makes the same key
    assert a1["run"] == a2["run"] != b1["run"]  # the run's across its attempts
    assert a1["attempt"] != a2["attempt"]  # one attempt's
    assert a1["global"] == a2["global"] == b1["global"] == "k"  # the environment's
    assert isinstance(a1["run"], IdempotencyKey)
    assert idempotency_keys.create(["user", "42"], scope="global") == "user-42"


def test_outside_a_run_every_scope_is_global_and_plain_text_is_left_alone() -> None:
    assert idempotency_keys.create("k") == "k" == idempotency_keys.create("k", scope="attempt")
    assert scoped("k") == "k"


def test_plain_text_inside_a_run_is_the_run_s_and_a_made_key_stays_as_made() -> None:
    made = in_run("run_a", 1, lambda: idempotency_keys.create("k", scope="global"))
    assert in_run("run_a", 1, lambda: scoped("k")) == in_run(
        "run_a", 2, lambda: idempotency_keys.create("k")
    )
    assert in_run("run_a", 1, lambda: scoped(made)) == "k"
    assert in_run("run_a", 1, lambda: scoped(None)) is None


@pytest.mark.parametrize(
    ("key", "scope", "message"),
    [
        ("", "run", "non-empty"),
        (7, "run", "text or a list of text"),
        ([], "run", "text or a list of text"),
        ("k", "tenant", "scope: one of run, attempt, global"),
    ],
)
def test_a_bad_key_or_scope_is_refused_naming_it(key: Any, scope: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        idempotency_keys.create(key, scope=scope)


def test_a_run_key_passed_on_as_text_stays_that_run_s() -> None:
    made = in_run("run_a", 1, lambda: idempotency_keys.create("k"))
    as_text = str(made)  # after a payload or a step's result: plain text
    assert in_run("run_b", 1, lambda: scoped(as_text)) == made
