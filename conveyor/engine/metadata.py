"""Run metadata in the engine: the ops of runs' code (sdk/metadata.py) applied to each run, its
parent or its root, for many runs in one transaction.

A worker sends the flushes of all its runs that are ready together, so ten thousand changes a
second are tens of transactions, not ten thousand. Each flush is answered on its own: one from an
attempt that no longer holds its run, or with an op that does not fit, changes nothing of the
others. The rows are locked children first (ids sort by creation time), the order in which every
other transaction takes a run and then its parent, so two workers' batches cannot deadlock on
PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from conveyor.engine.transitions import Holder, holds, stale_attempt
from conveyor.engine.views import json_text
from conveyor.errors import ConveyorError, NotFound, PayloadError
from conveyor.metadata_ops import add_tag, apply_op, metadata_json
from conveyor.protocol import MetadataOp
from conveyor.serialization import json_problem
from conveyor.store import Row, Tx


@dataclass(frozen=True, slots=True)
class Flush:
    """The ops a run's code made since its last flush, from its attempt `holder`."""

    run_id: str
    ops: list[MetadataOp]
    holder: Holder


Answer = dict[str, Any] | ConveyorError  # {"applied": seq, "refused": [...]} or why not at all


def apply_flushes(
    tx: Tx, env_id: str, flushes: list[Flush], now: float
) -> tuple[list[Answer], list[str]]:
    """Apply the flushes in order, in `tx`: an answer per flush, and the runs changed. Ops
    numbered at or below a run's `metadata_seq` were applied before (a replay makes them again)
    and are skipped. An op that does not fit (an increment of a text) is refused alone, and all
    of a flush's ops to a run whose metadata they would take over the limit."""
    if not flushes:
        return [], []
    rows = _lock(tx, env_id, flushes)
    texts: dict[str, str] = {}  # metadata JSON as changed so far, by run id
    tags: dict[str, list[str]] = {}
    seqs: dict[str, int] = {}
    answers: list[Answer] = []
    for flush in flushes:
        try:
            answers.append(_apply(flush, rows, texts, tags, seqs))
        except ConveyorError as exc:
            answers.append(exc)
    tx.run_many(
        "set_run_metadata", [{"id": i, "metadata": t, "now": now} for i, t in texts.items()]
    )
    tx.run_many(
        "set_run_tags", [{"id": i, "tags": json_text(t), "now": now} for i, t in tags.items()]
    )
    tx.run_many("set_metadata_seq", [{"id": i, "seq": s} for i, s in seqs.items()])
    return answers, list(dict.fromkeys([*texts, *tags]))


def _lock(tx: Tx, env_id: str, flushes: list[Flush]) -> dict[str, Row]:
    """The rows of the flushes' runs and of the parents and roots they change, locked (on
    PostgreSQL) children first; runs of another environment are left out (not found)."""
    wanted = {f.run_id for f in flushes}
    upward = {f.run_id for f in flushes if any(op.target != "self" for op in f.ops)}
    if upward:  # which runs those are: a run's parent and root never change
        for row in tx.all("run_families", ids=sorted(upward), env_id=env_id):
            wanted |= {row["parent_id"] or row["id"], row["root_id"] or row["id"]}
    return {r["id"]: r for r in tx.all("lock_runs_by_ids", ids=sorted(wanted), env_id=env_id)}


def _target_id(run: Row, op: MetadataOp) -> str:
    if op.target == "parent":
        return str(run["parent_id"] or run["id"])
    if op.target == "root":
        return str(run["root_id"] or run["id"])
    return str(run["id"])


def _apply(
    flush: Flush,
    rows: dict[str, Row],
    texts: dict[str, str],
    tags: dict[str, list[str]],
    seqs: dict[str, int],
) -> dict[str, Any]:
    run = rows.get(flush.run_id)
    if run is None:
        raise NotFound(f"run {flush.run_id} not found")
    if not holds(run, flush.holder.worker_id, flush.holder.fence):
        raise stale_attempt(flush.run_id, run)
    done: int = seqs.get(flush.run_id) or run["metadata_seq"] or 0
    fresh = [op for op in flush.ops if op.seq > done]
    if not fresh:
        return {"applied": done, "refused": []}
    refused: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    run_tags: list[str] | None = None
    for op in fresh:
        try:
            _check_value(op)
            if op.op == "tag":
                if run_tags is None:
                    run_tags = list(tags.get(run["id"]) or json.loads(run["tags"]))
                add_tag(run_tags, op.value)
                continue
            target = _target_id(run, op)
            if target not in rows:  # pragma: no cover - a parent outlives its children
                raise NotFound(f"run {target} not found")
            if target not in values:
                values[target] = json.loads(texts.get(target) or rows[target]["metadata"] or "{}")
            apply_op(values[target], op.op, op.key, op.value)
        except PayloadError as exc:
            refused.append(exc.message)
    for target, value in values.items():
        try:
            texts[target] = metadata_json(value, f"run {target}")
        except PayloadError as exc:  # over the limit: none of this flush's changes to it
            refused.append(exc.message)
    if run_tags is not None:
        tags[run["id"]] = run_tags
    seqs[flush.run_id] = applied = max(op.seq for op in fresh)
    return {"applied": applied, "refused": refused}


def _check_value(op: MetadataOp) -> None:
    """PayloadError naming the key when an op's value is no JSON to store."""
    problem = json_problem(op.value, f"the value of metadata key {op.key!r}")
    if problem is None:
        try:
            json.dumps(op.value, allow_nan=False)
        except (TypeError, ValueError) as exc:  # NaN, infinity, or no JSON type at all
            problem = f"the value of metadata key {op.key!r} is not JSON: {exc}"
    if problem:
        raise PayloadError(problem)
