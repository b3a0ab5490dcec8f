"""py-spy around the workloads: `record` the Conveyor dev process (uvicorn, supervisor, engine)
and its executor subprocesses into raw collapsed stacks, then summarize where time went.

    .venv/bin/python bench/run.py --only conveyor --profile bench/profiles

Two extra passes after the measured rounds: one sampling every thread that is not idle (a thread
woken but waiting for the GIL counts, at the line where it waits), one with `--gil` (only the
thread holding the GIL: where the process's Python CPU goes). Their figures are not reported:
sampling pauses the process.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    return found


class Recorder:
    """`py-spy record --subprocesses` of one pid, started and stopped around a workload. The raw
    file holds collapsed stacks (flamegraph.pl or speedscope read it); summary.txt ranks them."""

    def __init__(
        self, pid: int, out_dir: Path, name: str, rate: int = 200, gil: bool = False
    ) -> None:
        self.pid = pid
        self.gil = gil
        self.out_dir = out_dir
        self.raw = out_dir / f"{name}.txt"
        self.rate = rate
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # one recorder only: a second one would take CPU from the two cores being measured
        argv = [
            py_spy(),
            "record",
            "--pid",
            str(self.pid),
            "--subprocesses",
            "--threads",
            "--rate",
            str(self.rate),
            "--format",
            "raw",
            "--output",
            str(self.raw),
            *(["--gil"] if self.gil else []),
        ]
        with open(self.raw.with_suffix(".log"), "wb") as log:
            self.procs.append(
                subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )
        time.sleep(1.0)  # py-spy attaches to the process and its children

    def stop(self) -> None:
        if not self.procs:
            return
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()
        with contextlib.suppress(OSError):
            self.raw.with_suffix(".summary.txt").write_text(summarize(self.raw))


def _parse(raw: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summarize(raw: Path, top: int = 30) -> str:
    """Samples per process and thread, then per process the functions with the most self and
    inclusive samples (a function counted once per stack)."""
    stacks = _parse(raw)
    total = sum(c for _, c in stacks) or 1
    per_thread: Counter[str] = Counter()
    self_time: dict[str, Counter[str]] = defaultdict(Counter)
    inclusive: dict[str, Counter[str]] = defaultdict(Counter)
    for frames, count in stacks:
        process = next((f for f in reversed(frames) if f.startswith("process ")), "process ?")
        thread = next((f for f in frames if f.startswith("thread ")), "thread ?")
        per_thread[f"{process[:90]} / {thread}"] += count
        code = [f for f in frames if not f.startswith(("process ", "thread "))]
        if code:
            self_time[process][code[-1]] += count
            for frame in set(code):
                inclusive[process][frame] += count
    lines = [f"{total} samples", "", "samples by process / thread:"]
    lines += [f"  {c:7d} {100 * c / total:5.1f}%  {k}" for k, c in per_thread.most_common()]
    for process, counter in sorted(self_time.items(), key=lambda item: -sum(item[1].values())):
        n = sum(counter.values())
        lines += ["", f"{process[:120]}  ({n} samples)", "  self:"]
        lines += [f"    {c:7d} {100 * c / n:5.1f}%  {f}" for f, c in counter.most_common(top)]
        lines += ["  inclusive:"]
        lines += [
            f"    {c:7d} {100 * c / n:5.1f}%  {f}" for f, c in inclusive[process].most_common(top)
        ]
        ours = [(f, c) for f, c in inclusive[process].most_common() if "(conveyor/" in f][:top]
        lines += ["  inclusive, Conveyor's own functions:"]
        lines += [f"    {c:7d} {100 * c / n:5.1f}%  {f}" for f, c in ours]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
