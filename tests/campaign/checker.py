"""The campaign's checker: from the recorded history (tasks/history.py and the driver's lines)
and the database's final state, it proves or refutes, run by run:

- no run lost: every trigger that was answered names a run the database has, and every run
  ended in a final status;
- no run executing twice at the same time: two segments (executions of a body in a process)
  of one run never overlap;
- limits: at no moment do more segments execute than a queue's limit, or than the
  environment's limit;
- steps ran once: a step of a run ran again only inside the at-least-once window (the
  execution that ran it first recorded nothing after the step's end: it died, was stopped or was
  cut off between the step's return and the journal's acknowledgment);
- hooks owed fired once: each run of a task with hooks fired the hook its final status owes
  exactly once; it may fire again only when a fault hit the first firing's worker, that
  worker's server or the database between the two firings (the at-least-once window of a hook:
  it ran, and its report never reached the engine);
- canceled runs stop: after a cancel was acknowledged, no new segment of the run starts and at
  most one step begins (the one under way when its journal call is refused).

Intervals are lower bounds: a segment executes from its `start` (or `resume`) line to its
`pause`/`end`/`stop` line or, when it died, to its last line (ticks every 0.2 s). An overlap or
an excess seen on lower bounds happened for real."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

FINAL = {"COMPLETED", "FAILED", "CANCELED", "CRASHED", "SYSTEM_FAILURE", "TIMED_OUT", "EXPIRED"}
# any other final status owes on_failure
OWED = {
    "COMPLETED": "on_success",
    "CANCELED": "on_cancel",
}
QUEUES = {"camp-limited": "camp-limited", "camp-child": "camp-limited"}
BODY = {
    "start",
    "tick",
    "step",
    "step-end",
    "pause",
    "resume",
    "end",
    "stop",
    "children",
    "token",
    "token-result",
}


def read_history(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue  # a line being written as we read
    return lines


@dataclass(frozen=True)
class Interval:
    run: str
    task: str
    seg: str
    host: str
    begin: float
    end: float


def intervals(history: list[dict[str, Any]]) -> list[Interval]:
    """Every stretch of time a segment executed (lower bounds)."""
    by_seg: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in history:
        if line["k"] in BODY and "seg" in line:
            by_seg[line["seg"]].append(line)
    found = []
    for seg, lines in by_seg.items():
        lines.sort(key=lambda line: line["mono"])
        begin: float | None = None
        last = lines[0]
        for line in lines:
            if line["k"] in ("start", "resume"):
                begin = line["mono"] if begin is None else begin
            elif line["k"] in ("pause", "end", "stop"):
                if begin is not None:
                    found.append(
                        Interval(line["run"], line["task"], seg, line["host"], begin, line["mono"])
                    )
                begin = None
            last = line
        if begin is not None:
            found.append(
                Interval(last["run"], last["task"], seg, last["host"], begin, last["mono"])
            )
    return found


def peak_excesses(spans: list[Interval], limit: int) -> list[dict[str, Any]]:
    """Moments when more than `limit` of `spans` execute at once (one per episode)."""
    # a lone start line: no time known to have executed
    spans = [s for s in spans if s.end > s.begin]
    edges = sorted(
        [(s.begin, 1, s) for s in spans] + [(s.end, -1, s) for s in spans],
        key=lambda e: (e[0], e[1]),
    )
    current: set[Interval] = set()
    excesses = []
    over = False
    for at, step, span in edges:
        if step == 1:
            current.add(span)
        else:
            current.discard(span)
        if len(current) > limit and not over:
            excesses.append(
                {
                    "at": at,
                    "executing": len(current),
                    "limit": limit,
                    "runs": sorted({s.run for s in current}),
                }
            )
        over = len(current) > limit
    return excesses


def check(
    history: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    *,
    env_limit: int | None,
    queue_limits: dict[str, int],
) -> dict[str, Any]:
    violations: list[dict[str, Any]] = []
    excused: Counter[str] = Counter()
    final = {r["id"]: r for r in runs}

    # no run lost
    for line in history:
        if line["k"] == "trigger" and line["run"] not in final:
            violations.append(
                {
                    "kind": "lost",
                    "run": line["run"],
                    "detail": f"trigger {line['key']} answered, no such run in the database",
                }
            )
    seen = {line["run"] for line in history if line["k"] in BODY and "run" in line}
    for run_id in sorted(seen - set(final)):
        violations.append(
            {"kind": "lost", "run": run_id, "detail": "executed, no such run in the database"}
        )
    for run in runs:
        if run["status"] not in FINAL:
            violations.append(
                {"kind": "unfinished", "run": run["id"], "detail": f"still {run['status']}"}
            )

    # no run's body executing twice at the same time
    spans = intervals(history)
    by_run: dict[str, list[Interval]] = defaultdict(list)
    for span in spans:
        by_run[span.run].append(span)
    for run_id, own in by_run.items():
        own.sort(key=lambda s: s.begin)
        for i, a in enumerate(own):
            for b in own[i + 1 :]:
                if b.begin >= a.end:
                    break
                if b.seg != a.seg:
                    violations.append(
                        {
                            "kind": "double-execution",
                            "run": run_id,
                            "detail": f"segment {a.seg} on {a.host} [{a.begin:.3f}, {a.end:.3f}] "
                            f"overlaps {b.seg} on {b.host} [{b.begin:.3f}, {b.end:.3f}]",
                        }
                    )

    # queue and environment limits
    for queue, limit in queue_limits.items():
        in_queue = [s for s in spans if QUEUES.get(s.task) == queue]
        for excess in peak_excesses(in_queue, limit):
            violations.append({"kind": "queue-limit", "queue": queue, **excess})
    if env_limit is not None:
        for excess in peak_excesses(spans, env_limit):
            violations.append({"kind": "env-limit", **excess})

    # steps ran once (or inside the at-least-once window)
    by_seg_lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in history:
        if "seg" in line:
            by_seg_lines[line["seg"]].append(line)
    step_runs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for line in history:
        if line["k"] == "step":
            step_runs[(line["run"], line["name"])].append(line)
    for (run_id, name), executions in step_runs.items():
        executions.sort(key=lambda line: line["mono"])
        for earlier in executions[:-1]:
            went_on = [
                line
                for line in by_seg_lines[earlier["seg"]]
                if line["mono"] > earlier["mono"]
                and line["k"] in ("step", "pause", "end", "children")
            ]
            if went_on:
                violations.append(
                    {
                        "kind": "step-repeated",
                        "run": run_id,
                        "step": name,
                        "detail": (
                            f"ran in segment {earlier['seg']} on {earlier['host']}, which went on "
                            f"({went_on[0]['k']}), and ran again"
                        ),
                    }
                )
            else:
                excused["step-rerun-in-window"] += 1

    # hooks owed fired once
    faults = [line for line in history if line["k"] == "fault"]
    server_of: dict[str, str] = next(
        (line.get("server_of", {}) for line in history if line["k"] == "begin"), {}
    )

    def hits(fault: dict[str, Any], host: str) -> bool:
        """The fault could have kept a hook's report, sent from `host`, from reaching the engine."""
        return bool({host, server_of.get(host, ""), "db1", "db2"} & set(fault["hosts"]))

    hooks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in history:
        if line["k"] == "hook":
            hooks[line["run"]].append(line)
    for run in runs:
        if run["status"] not in FINAL or not run.get("hooks"):
            continue
        owed = OWED.get(run["status"], "on_failure")
        fired = sorted(hooks.get(run["id"], []), key=lambda line: line["mono"])
        wrong = [line for line in fired if line["hook"] != owed]
        if wrong:
            violations.append(
                {
                    "kind": "hook-wrong",
                    "run": run["id"],
                    "detail": f"{run['status']} fired {wrong[0]['hook']}",
                }
            )
        right = [line for line in fired if line["hook"] == owed]
        if not right and owed in run["hooks"].split(","):
            violations.append(
                {"kind": "hook-missing", "run": run["id"], "detail": f"{run['status']}, no {owed}"}
            )
        for first, again in pairwise(right):
            hit = [
                f
                for f in faults
                if first["mono"] <= f["mono"] <= again["mono"] and hits(f, first["host"])
            ]
            if hit:
                excused["hook-refired-after-fault"] += 1
            else:
                violations.append(
                    {
                        "kind": "hook-repeated",
                        "run": run["id"],
                        "detail": (
                            f"{owed} fired at {first['mono']:.3f} on {first['host']} and again at "
                            f"{again['mono']:.3f} on {again['host']}, no fault between"
                        ),
                    }
                )

    # a canceled run stops
    of_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in history:
        if "run" in line:
            of_run[line["run"]].append(line)
    for line in history:
        if line["k"] != "cancel" or line.get("status") != "CANCELED":
            continue
        after = [other for other in of_run[line["run"]] if other["mono"] > line["mono"]]
        starts = [other for other in after if other["k"] == "start"]
        steps = {other["name"] for other in after if other["k"] == "step"}
        if starts or len(steps) > 1:
            violations.append(
                {
                    "kind": "canceled-ran-on",
                    "run": line["run"],
                    "detail": f"after the cancel: {len(starts)} starts, steps {sorted(steps)}",
                }
            )

    statuses = Counter(r["status"] for r in runs)
    figures = {
        "runs": len(runs),
        "statuses": dict(sorted(statuses.items())),
        "triggered": sum(1 for line in history if line["k"] == "trigger"),
        "trigger_failures": sum(1 for line in history if line["k"] == "trigger-failed"),
        "segments": len({s.seg for s in spans}),
        "steps": sum(len(v) for v in step_runs.values()),
        "hooks": sum(len(v) for v in hooks.values()),
        "cancels": sum(1 for line in history if line["k"] == "cancel"),
        "tokens_completed": sum(1 for line in history if line["k"] == "token-complete"),
        "faults_recorded": dict(sorted(Counter(f["kind"] for f in faults).items())),
        "excused": dict(excused),
        "violations_by_kind": dict(sorted(Counter(v["kind"] for v in violations).items())),
    }
    return {"figures": figures, "violations": violations}


def summary(report: dict[str, Any]) -> str:
    f = report["figures"]
    lines = [
        f"campaign: {f['runs']} runs {f['statuses']}",
        f"  faults: {sum(f.get('faults', f['faults_recorded']).values())} "
        f"{f.get('faults', f['faults_recorded'])}",
        f"  segments {f['segments']}, steps {f['steps']}, hooks {f['hooks']}, cancels "
        f"{f['cancels']}, tokens {f['tokens_completed']}, excused {f['excused']}",
        f"  violations: {len(report['violations'])} {f['violations_by_kind']}",
    ]
    for violation in report["violations"][:20]:
        lines.append(f"    {violation}")
    return "\n".join(lines)
