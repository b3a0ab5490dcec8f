"""Machine presets inside an executor process: its memory cap and its share of the CPU.

    micro 0.25 vCPU / 0.25 GB · small-1x 0.5 / 0.5 · small-2x 1 / 1 · medium-1x 1 / 2
    medium-2x 2 / 4 · large-1x 4 / 8 · large-2x 8 / 16            (conveyor.models.MACHINES)

Memory: the supervisor stops an executor whose resident memory passes the preset (the attempts
in it end with the code `out_of_memory`); here the address space is capped at a margin above
it, so a runaway allocation fails at once with MemoryError, also reported as out of memory.

CPU, the best this machine allows:
1. cgroup v2 `cpu.max` (quota = vCPU x period) in a cgroup of the executor's own, where the
   worker's cgroup is delegated to it (systemd `Delegate=yes`, a container with a writable
   cgroup v2): a hard cap, fractions of a core included.
2. Otherwise a nice level by preset: when cores are contended, smaller presets get less CPU
   than larger ones. That is a relative priority, not a cap: an idle machine lets any executor
   use what it can. The levels are mild (the default small-1x gets 1) so that executors do not
   starve behind the worker's own processes.
Which one applies is returned by `apply_machine`; the worker prints it once per preset.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

from conveyor.models import MACHINES

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
NICE_BY_VCPU = ((1.0, 0), (0.5, 1), (0.0, 3))  # presets with at least this many vCPU: nice level


def limit_memory(machine: str) -> None:
    """Cap the address space at a margin over the machine's memory (virtual memory runs far
    ahead of resident memory in Python): a runaway allocation fails with MemoryError here; the
    supervisor's RSS check catches the rest."""
    gigabytes = MACHINES.get(machine, (0, 0))[1]
    if gigabytes:
        limit = int((gigabytes * 4 + 1) * 1024**3)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def cpu_by_cgroup(vcpu: float, pid: int) -> bool:
    """Put this process in a cgroup of its own with cpu.max set; False when not allowed here."""
    try:
        lines = (Path("/proc/self/cgroup")).read_text().splitlines()
        relative = next(line.split("::", 1)[1] for line in lines if line.startswith("0::"))
        parent = CGROUP_ROOT / relative.lstrip("/")
        if "cpu" not in (parent / "cgroup.subtree_control").read_text().split():
            return False
        own = parent / f"conveyor-executor-{pid}"
        own.mkdir(exist_ok=True)
        (own / "cpu.max").write_text(f"{max(1000, int(vcpu * CPU_PERIOD_US))} {CPU_PERIOD_US}")
        (own / "cgroup.procs").write_text(str(pid))
        return True
    except (OSError, StopIteration, IndexError):
        return False


def cpu_by_priority(vcpu: float) -> str:
    """A nice level by preset; what was done."""
    level = next(nice for floor, nice in NICE_BY_VCPU if vcpu >= floor)
    if not level:
        return f"{vcpu:g} vCPU: top priority (no cgroup v2 to cap it)"
    try:
        os.nice(level)
    except OSError:
        return "no CPU limit available (no cgroup v2, nice refused)"
    return f"{vcpu:g} vCPU: nice {level} (no cgroup v2 to cap it)"


def apply_machine(machine: str) -> str:
    """Enforce the preset on the calling process; how its CPU share is enforced."""
    limit_memory(machine)
    vcpu = MACHINES.get(machine, (0, 0))[0]
    if not vcpu:
        return "no CPU limit (unknown preset)"
    pid = os.getpid()
    if cpu_by_cgroup(vcpu, pid):
        return f"cgroup cpu.max {vcpu:g} vCPU"
    return cpu_by_priority(vcpu)
