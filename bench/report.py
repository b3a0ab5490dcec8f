"""Turning measurements into the figures the README promises: percentiles and a markdown table."""

from __future__ import annotations

import statistics
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(samples: list[float]) -> dict[str, float]:
    """Milliseconds: p50, p90, p99, mean, min and max."""
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "mean": statistics.fmean(ms) if ms else float("nan"),
        "min": min(ms, default=float("nan")),
        "max": max(ms, default=float("nan")),
    }


def _mb(value: float) -> str:
    return f"{value / 1024**2:.0f} MB"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return ""
    return f"{a / b:.2f}x"


def table(results: dict[str, Any]) -> str:
    """Conveyor and Celery side by side (either may be missing)."""
    cv = results.get("conveyor", {})
    ce = results.get("celery", {})
    rows: list[tuple[str, str, str, str]] = []

    def add(label: str, f: Any, key: Any, ratio: bool = False) -> None:
        a = key(cv) if cv else None
        b = key(ce) if ce else None
        rows.append(
            (
                label,
                f(a) if a is not None else "-",
                f(b) if b is not None else "-",
                _ratio(a, b) if ratio else "",
            )
        )

    tp = lambda side: side.get("throughput")  # noqa: E731
    lat = lambda side: side.get("latency_ms")  # noqa: E731
    call = lambda side: side.get("trigger_call_ms")  # noqa: E731
    add(
        "no-op throughput (runs/s, first trigger to last completion)",
        lambda v: (
            f"{v[0]:.0f}"
            if v[1] >= v[2]
            else f"{v[0]:.0f} (**FAILED**: {v[1]} of {v[2]} runs completed)"
        ),
        lambda s: tp(s) and (tp(s)["runs_per_second"], tp(s)["completed"], tp(s)["runs"]),
    )
    if (
        cv.get("throughput")
        and ce.get("throughput")
        and all(side["throughput"]["completed"] >= side["throughput"]["runs"] for side in (cv, ce))
    ):
        rows[-1] = (
            *rows[-1][:3],
            _ratio(cv["throughput"]["runs_per_second"], ce["throughput"]["runs_per_second"]),
        )
    # no ratio of a failed workload
    complete = all(
        side["throughput"]["completed"] >= side["throughput"]["runs"]
        for side in (cv, ce)
        if side.get("throughput")
    )
    add(
        "  pace after the last trigger call returned (runs/s; the client no longer competing)",
        lambda v: f"{v:.0f}",
        lambda s: tp(s) and tp(s).get("drain_runs_per_second"),
        ratio=complete,
    )
    add("time to last completion", lambda v: f"{v:.2f} s", lambda s: tp(s) and tp(s)["seconds"])
    add(
        "time until seen done by polling",
        lambda v: f"{v:.2f} s",
        lambda s: tp(s) and tp(s)["observed_seconds"],
    )
    add(
        "time to enqueue all runs",
        lambda v: f"{v:.2f} s",
        lambda s: tp(s) and tp(s)["enqueue_seconds"],
    )
    add("runs completed", lambda v: f"{v}", lambda s: tp(s) and tp(s)["completed"])
    add(
        "  of which by the time the last trigger call returned",
        lambda v: f"{v}",
        lambda s: tp(s) and tp(s).get("done_by_enqueue_end"),
    )
    add(
        "CPU seconds: platform / worker processes",
        lambda v: f"{v:.1f} s",
        lambda s: tp(s) and tp(s).get("cpu"),
    )
    add(
        "  of which the main process (Conveyor: dev process; Celery: main worker process)",
        lambda v: f"{v:.1f} s",
        lambda s: tp(s) and tp(s).get("cpu_main"),
    )
    add(
        "CPU ms per 1,000 runs: platform / worker processes",
        lambda v: f"{v:.0f} ms",
        lambda s: (
            tp(s) and tp(s).get("cpu") is not None and 1e6 * tp(s)["cpu"] / max(tp(s)["runs"], 1)
        ),
        ratio=complete,
    )
    add("CPU seconds: Redis", lambda v: f"{v:.1f} s", lambda s: tp(s) and tp(s).get("cpu_redis"))
    add(
        "CPU seconds: the benchmark client",
        lambda v: f"{v:.1f} s",
        lambda s: tp(s) and tp(s).get("cpu_client"),
    )
    add(
        "CPU of other processes on the machine during throughput (noise)",
        lambda v: f"{v[0]:.1f} s ({v[1]:.2f} cores)",
        lambda s: tp(s) and (tp(s)["cpu_other"], tp(s)["cpu_other"] / max(tp(s)["window"], 1e-9)),
    )
    add("peak RSS, platform/worker processes summed", _mb, lambda s: tp(s) and tp(s)["peak_rss"])
    add("peak PSS, same processes", _mb, lambda s: tp(s) and tp(s)["peak_pss"])
    for q in ("p50", "p90", "p99"):
        add(
            f"trigger-to-start latency {q}",
            lambda v: f"{v:.2f} ms",
            lambda s, q=q: lat(s) and lat(s)[q],
            ratio=True,
        )
    add("trigger call returns (p50)", lambda v: f"{v:.2f} ms", lambda s: call(s) and call(s)["p50"])
    add(
        "CPU of other processes during the latency runs (noise)",
        lambda v: f"{v:.2f} cores",
        lambda s: s.get("latency_other_cores"),
    )
    if len(cv.get("throughput_rounds", [])) > 1 or len(ce.get("throughput_rounds", [])) > 1:
        rounds = lambda side: side and ", ".join(f"{v:.0f}" for v in side["throughput_rounds"])  # noqa: E731
        rows.insert(
            1,
            (
                "runs/s of each round (the median round is shown)",
                rounds(cv) or "-",
                rounds(ce) or "-",
                "",
            ),
        )

        def p50s(side: dict | None) -> str | None:
            return side and ", ".join(f"{v:.2f}" for v in side.get("latency_p50_rounds", []))

        rows.append(
            (
                "latency p50 of each round (ms; percentiles above pool all rounds)",
                p50s(cv) or "-",
                p50s(ce) or "-",
                "",
            )
        )
    lines = ["| | Conveyor | Celery | Conveyor / Celery |", "|---|---:|---:|---:|"]
    lines += [f"| {label} | {a} | {b} | {r} |" for label, a, b, r in rows]
    return "\n".join(lines)


# -- the durable workloads --------------------------------------------------------------------

SYSTEMS = [
    ("conveyor", "Conveyor"),
    ("celery", "Celery"),
    ("dbos-postgres", "DBOS (Postgres)"),
    ("dbos-sqlite", "DBOS (SQLite)"),
]


def durable_table(results: dict[str, dict[str, Any]], sizes: dict[str, Any]) -> str:
    """The three durable workloads, one block each: systems as columns, then Conveyor / each
    other system. `results[system][workload]` is that system's (median) figures."""
    ideal_limited, sleep_seconds, tuned_poll = (
        sizes["ideal_limited"],
        sizes["sleep_seconds"],
        sizes["tuned_poll"],
    )
    present = [(key, label) for key, label in SYSTEMS if key in results]
    others = [(key, label) for key, label in present if key != "conveyor"]
    rows: list[list[str]] = []

    def add(
        label: str,
        workload: str,
        f: Any,
        key: Any,
        ratio: bool = False,
        base_workload: str | None = None,
        headline: bool = False,
    ) -> None:
        """A row; with `ratio`, Conveyor's value (of `base_workload`, if given) over each other's. A
        `headline` row shows FAILED instead of the figure of a workload that did not complete."""
        values = []
        failed = []
        for system, _ in present:
            figures = results[system].get(workload)
            values.append(key(figures) if figures else None)
            failed.append(bool(figures and figures.get("problem")))
        row = [
            label,
            *(
                f"**FAILED**: {results[system][workload]['problem']}"
                if headline and bad
                else f(v)
                if v is not None
                else "-"
                for (system, _), v, bad in zip(present, values, failed, strict=True)
            ),
        ]
        if "conveyor" in results:
            base_figures = results["conveyor"].get(base_workload or workload)
            base = key(base_figures) if base_figures and not base_figures.get("problem") else None
            row += [
                _ratio(base, v) if ratio and not bad else ""
                for (system, _), v, bad in zip(present, values, failed, strict=True)
                if system != "conveyor"
            ]
        rows.append(row)

    def section(title: str) -> None:
        rows.append(
            [
                f"**{title}**",
                *[""] * len(present),
                *[""] * (len(others) if "conveyor" in results else 0),
            ]
        )

    s = lambda v: f"{v:.2f} s"  # noqa: E731
    ms = lambda v: f"{v * 1000:.0f} ms"  # noqa: E731
    n = lambda v: f"{v}"  # noqa: E731
    get = lambda k: lambda fig: fig.get(k)  # noqa: E731

    section(f"1. fan-out: {sizes['fanout']:,} no-op children, the parent waits for all")
    add(
        "**parent triggered → parent completed**",
        "fanout",
        s,
        get("seconds"),
        ratio=True,
        headline=True,
    )
    add("  seen completed by the client", "fanout", s, get("observed_seconds"))
    add("  children completed", "fanout", n, get("children_ok"))
    add("  last child ended (after the trigger)", "fanout", s, get("children_last_end"))
    add(
        "  parent completed after the last child ended",
        "fanout",
        ms,
        get("resume_after_last_child"),
    )
    add(
        "  CPU seconds, platform / worker / DBOS process",
        "fanout",
        lambda v: f"{v:.1f} s",
        get("cpu"),
        ratio=True,
    )
    add(
        "  peak RSS (PSS)",
        "fanout",
        lambda v: f"{v[0] / 1024**2:.0f} MB ({v[1] / 1024**2:.0f} MB)",
        lambda fig: (fig["peak_rss"], fig["peak_pss"]),
    )
    add(
        "  CPU of other processes meanwhile (noise, cores)",
        "fanout",
        lambda v: f"{v:.2f}",
        lambda fig: fig["cpu_other"] / max(fig["window"], 1e-9),
    )

    section(
        f"2. limited: {sizes['limited']} children of 100 ms, queue concurrency {sizes['limit']} "
        f"(ideal {ideal_limited:.1f} s)"
    )
    add(
        "**parent triggered → parent completed**",
        "limited",
        s,
        get("seconds"),
        ratio=True,
        headline=True,
    )
    add(
        f"  overhead over the ideal {ideal_limited:.1f} s",
        "limited",
        s,
        lambda fig: fig["seconds"] - ideal_limited,
        ratio=True,
    )
    add(
        "  **peak concurrency** (recorded start/end of the children)",
        "limited",
        n,
        get("recorded_peak"),
    )
    add("  peak concurrency (the children's own time.time() stamps)", "limited", n, get("own_peak"))
    add(
        "  slots busy between first start and last end",
        "limited",
        lambda v: f"{v:.0%}",
        get("own_busy"),
    )
    add(
        "  slot handover, p50 (a child's end to the next start)",
        "limited",
        ms,
        get("own_handoff_p50"),
        ratio=True,
    )
    add("  first child started (after the trigger)", "limited", ms, get("own_first_start"))
    add("  children completed", "limited", n, get("children_ok"))
    add(
        "  CPU seconds, platform / worker / DBOS process",
        "limited",
        lambda v: f"{v:.1f} s",
        get("cpu"),
        ratio=True,
    )
    add(
        f"  DBOS with polling {tuned_poll:g} s (queue and get_result): triggered → completed",
        "limited-tuned",
        s,
        get("seconds"),
        ratio=True,
        base_workload="limited",
        headline=True,
    )
    add(
        f"  DBOS with polling {tuned_poll:g} s: peak concurrency (recorded; own stamps)",
        "limited-tuned",
        lambda v: f"{v[0] if v[0] is not None else '-'}; {v[1]}",
        lambda fig: (fig.get("recorded_peak"), fig.get("own_peak")),
    )

    section(f"3. {sizes['sleepers']:,} runs sleeping {sleep_seconds:g} s durably")
    add("**first trigger → all completed**", "sleep", s, get("seconds"), ratio=True, headline=True)
    add(
        f"  over the ideal {sleep_seconds:g} s",
        "sleep",
        s,
        lambda fig: fig["seconds"] - sleep_seconds,
        ratio=True,
    )
    add(
        f"  time to trigger all {sizes['sleepers']:,}",
        "sleep",
        s,
        get("trigger_seconds"),
        ratio=True,
    )
    add("  every run suspended (WAITING) after", "sleep", s, get("all_waiting_after"))
    add("  completed", "sleep", n, get("children_ok"))
    add(
        "  **peak RSS**, platform / worker / DBOS process",
        "sleep",
        _mb,
        get("peak_rss"),
        ratio=True,
    )
    add("  peak PSS, same processes", "sleep", _mb, get("peak_pss"), ratio=True)
    add("  processes (peak)", "sleep", n, get("processes"))
    add(
        "  CPU seconds, platform / worker / DBOS process",
        "sleep",
        lambda v: f"{v:.1f} s",
        get("cpu"),
        ratio=True,
    )
    add(
        "  CPU of other processes meanwhile (noise, cores)",
        "sleep",
        lambda v: f"{v:.2f}",
        lambda fig: fig["cpu_other"] / max(fig["window"], 1e-9),
    )

    if any(
        len(r.get("rounds", {}).get(w, [])) > 1
        for r in results.values()
        for w in ("fanout", "limited", "sleep")
    ):
        for workload, label in (("fanout", "fan-out"), ("limited", "limited"), ("sleep", "sleep")):
            cells = [
                ", ".join(f"{v:.2f}" for v in results[k].get("rounds", {}).get(workload, [])) or "-"
                for k, _ in present
            ]
            rows.append(
                [
                    f"{label}: seconds of each round (the median round is shown)",
                    *cells,
                    *([""] * len(others) if "conveyor" in results else []),
                ]
            )

    header = ["", *[label for _, label in present]]
    if "conveyor" in results:
        header += [f"Conveyor / {label}" for _, label in others]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
