"""The campaign's checker on crafted histories: each kind of violation is caught, and what the
at-least-once windows allow is not counted as one."""

from __future__ import annotations

from typing import Any

from tests.campaign.checker import check

LIMITS: dict[str, Any] = {"env_limit": 3, "queue_limits": {"camp-limited": 2}}


def line(
    k: str,
    mono: float,
    run: str = "r1",
    seg: str | None = None,
    task: str = "camp-steps",
    host: str = "w1",
    **fields: Any,
) -> dict[str, Any]:
    out = {"k": k, "mono": mono, "wall": mono, "host": host, "run": run, "task": task, **fields}
    if seg is not None:
        out["seg"] = seg
    return out


def body(
    run: str, seg: str, begin: float, end: float | None, task: str = "camp-steps", host: str = "w1"
) -> list[dict[str, Any]]:
    """A segment that starts at `begin`, ticks, and ends at `end`
    (None: it died after its last tick)."""
    lines = [line("start", begin, run, seg, task, host)]
    t = begin + 0.2
    stop = end if end is not None else begin + 1.0
    while t < stop:
        lines.append(line("tick", t, run, seg, task, host))
        t += 0.2
    if end is not None:
        lines.append(line("end", end, run, seg, task, host))
    return lines


def run(
    id: str = "r1", status: str = "COMPLETED", task: str = "camp-steps", hooks: str = ""
) -> dict[str, Any]:
    return {"id": id, "task_id": task, "status": status, "hooks": hooks}


def kinds(history: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[str]:
    return sorted(v["kind"] for v in check(history, runs, **LIMITS)["violations"])


def test_a_clean_history_has_no_violation() -> None:
    history = [
        line("trigger", 0, key="k1"),
        *body("r1", "a", 1, 3),
        *body("r1", "b", 4, 5),  # a retry after
    ]
    assert kinds(history, [run()]) == []


def test_an_answered_trigger_whose_run_is_not_in_the_database_is_lost() -> None:
    assert kinds([line("trigger", 0, run="r9", key="k9")], [run()]) == ["lost"]


def test_a_run_that_executed_but_is_not_in_the_database_is_lost() -> None:
    assert kinds(body("r9", "a", 1, 2), []) == ["lost"]


def test_a_run_left_in_a_non_final_status_is_unfinished() -> None:
    assert kinds([], [run(status="EXECUTING")]) == ["unfinished"]


def test_two_segments_of_one_run_at_once_are_a_double_execution() -> None:
    # a died at ~2, b began at 1.5
    history = [
        *body("r1", "a", 1, None),
        *body("r1", "b", 1.5, 3, host="w2"),
    ]
    assert kinds(history, [run()]) == ["double-execution"]


def test_a_paused_segment_does_not_overlap_the_next() -> None:
    history = [
        line("start", 1, "r1", "a"),
        line("pause", 1.5, "r1", "a", what="wait"),
        *body("r1", "b", 9, 10),
    ]
    assert kinds(history, [run()]) == []


def test_more_segments_of_a_queue_than_its_limit_at_once() -> None:
    history = [
        *body("r1", "a", 1, 3, "camp-limited"),
        *body("r2", "b", 1.5, 3, "camp-child"),
        *body("r3", "c", 2, 3, "camp-limited"),
    ]
    runs = [
        run("r1", task="camp-limited"),
        run("r2", task="camp-child"),
        run("r3", task="camp-limited"),
    ]
    assert kinds(history, runs) == ["queue-limit"]


def test_more_segments_than_the_environment_limit_at_once() -> None:
    history = [segment for i in range(4) for segment in body(f"r{i}", f"s{i}", 1 + i * 0.1, 3)]
    assert kinds(history, [run(f"r{i}") for i in range(4)]) == ["env-limit"]


def test_segments_that_only_touch_do_not_count_together() -> None:
    history = [
        *body("r1", "a", 1, 2, "camp-limited"),
        *body("r2", "b", 1, 2, "camp-limited"),
        *body("r3", "c", 2, 3, "camp-limited"),
    ]
    assert kinds(history, [run(f"r{i}", task="camp-limited") for i in (1, 2, 3)]) == []


def test_a_step_run_again_after_its_execution_went_on_is_repeated() -> None:
    history = [
        line("start", 1, seg="a"),
        line("step", 1.1, seg="a", name="s0"),
        line("step-end", 1.2, seg="a", name="s0"),
        line("step", 1.3, seg="a", name="s1"),  # s0 was journaled: the body went on to s1
        line("start", 5, seg="b"),
        line("step", 5.1, seg="b", name="s0"),
        line("end", 6, seg="b"),
    ]
    assert kinds(history, [run()]) == ["step-repeated"]


def test_a_step_run_again_after_its_execution_died_before_the_journal_answered_is_allowed() -> None:
    history = [
        line("start", 1, seg="a"),
        line("step", 1.1, seg="a", name="s0"),
        line("step-end", 1.2, seg="a", name="s0"),
        line("tick", 1.4, seg="a"),  # killed in the journal call
        line("start", 5, seg="b"),
        line("step", 5.1, seg="b", name="s0"),
        line("end", 6, seg="b"),
    ]
    report = check(history, [run()], **LIMITS)
    assert report["violations"] == [] and report["figures"]["excused"] == {
        "step-rerun-in-window": 1
    }


def test_a_hook_owed_and_never_fired_is_missing() -> None:
    hooks = "on_success,on_failure,on_cancel"
    assert kinds([], [run(hooks=hooks)]) == ["hook-missing"]
    assert kinds([line("hook", 5, hook="on_success")], [run(status="CANCELED", hooks=hooks)]) == [
        "hook-missing",
        "hook-wrong",
    ]


def test_a_hook_fired_twice_with_no_fault_between_is_repeated() -> None:
    hooks = "on_success,on_failure"
    history = [line("hook", 5, hook="on_failure"), line("hook", 6, hook="on_failure", host="w2")]
    assert kinds(history, [run(status="FAILED", hooks=hooks)]) == ["hook-repeated"]


def test_a_hook_fired_again_after_its_worker_was_killed_is_allowed() -> None:
    hooks = "on_success,on_failure"
    history = [
        line("hook", 5, hook="on_success"),
        {"k": "fault", "mono": 5.1, "kind": "kill-worker", "hosts": ["w1"]},
        line("hook", 16, hook="on_success", host="w2"),
    ]
    report = check(history, [run(hooks=hooks)], **LIMITS)
    assert report["violations"] == [] and report["figures"]["excused"] == {
        "hook-refired-after-fault": 1
    }


def test_a_canceled_run_that_goes_on_with_its_steps_or_starts_again() -> None:
    began = [
        line("start", 1, seg="a"),
        line("step", 1.1, seg="a", name="l0"),
        line("step-end", 1.4, seg="a", name="l0"),
    ]
    cancel = line("cancel", 1.5, status="CANCELED")
    one_more = line("step", 1.6, seg="a", name="l1")  # its journal call is refused: allowed
    assert kinds([*began, cancel, one_more], [run(status="CANCELED")]) == []
    assert kinds(
        [*began, cancel, one_more, line("step", 2.0, seg="a", name="l2")], [run(status="CANCELED")]
    ) == ["canceled-ran-on"]
    assert kinds([*began, cancel, line("start", 9, seg="b")], [run(status="CANCELED")]) == [
        "canceled-ran-on"
    ]


def test_a_fault_elsewhere_does_not_excuse_a_hook_fired_twice() -> None:
    begin = {"k": "begin", "mono": 0, "server_of": {"w1": "srv1", "w3": "srv2"}}
    history = [
        begin,
        line("hook", 5, hook="on_success"),
        {"k": "fault", "mono": 5.1, "kind": "kill-worker", "hosts": ["w3"]},
        {"k": "fault", "mono": 5.2, "kind": "kill-server", "hosts": ["srv2"]},
        line("hook", 16, hook="on_success", host="w2"),
    ]
    assert kinds(history, [run(hooks="on_success,on_failure")]) == ["hook-repeated"]
    server_down = {
        "k": "fault",
        "mono": 5.3,
        "kind": "kill-server",
        "hosts": ["srv1"],  # w1's own server
    }
    assert kinds([*history, server_down], [run(hooks="on_success,on_failure")]) == []
