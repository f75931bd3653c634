"""How busy the CPU is, and the OpenMP wait policy that follows from it.

llama.cpp (ggml) and torch share one libgomp in a process, and ggml meets at an OpenMP barrier
after every graph node. Whether idle threads should spin or sleep at that barrier depends on the
machine (measured here, BBQ + salary evaluation with a LoRA, 2 cores):

* quiet cores: spinning (libgomp's default) 40 s, sleeping (``PASSIVE``) 91 s;
* one core taken by another job: spinning 179 s, sleeping 74 s.

libgomp reads ``OMP_WAIT_POLICY`` once, when it loads, so the choice is made when ``synthbias`` is
imported, from a short sample of ``/proc/stat``: if the cores this process may use are idle, keep
libgomp's default (spin a little, then sleep); if another job is using them, sleep at once. A value
the user sets is always kept. The choice and its reason are in :data:`OMP_CHOICE`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path

#: Cores busy with other work above which threads sleep at barriers instead of spinning.
BUSY_THRESHOLD = 0.3
#: Seconds over which CPU use is sampled at import.
SAMPLE_SECONDS = 0.15

#: What :func:`choose_omp_wait_policy` decided in this process (policy, reason, busy cores).
OMP_CHOICE: dict[str, object] = {}


def _cpu_ticks(cpus: set[int], stat: str) -> tuple[int, int] | None:
    """(busy, total) jiffies summed over ``cpus`` from the text of ``/proc/stat``."""
    busy = total = 0
    seen = 0
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        try:
            index = int(name[3:])
        except ValueError:
            continue
        if index not in cpus:
            continue
        fields = [int(x) for x in rest.split()]
        # user nice system idle iowait irq softirq steal (guest time is already inside user)
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        all_ = sum(fields[:8])
        busy += all_ - idle
        total += all_
        seen += 1
    return (busy, total) if seen else None


def _own_ticks(self_stat: str) -> int:
    """User + system jiffies of this process (all its threads) from ``/proc/self/stat``."""
    fields = self_stat.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the file)


def _read(path: str) -> str:
    return Path(path).read_text()


def cores_busy_elsewhere(
    seconds: float = SAMPLE_SECONDS,
    read: Callable[[str], str] = _read,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Cores (of those this process may run on) used by other processes over ``seconds``.

    ``None`` where ``/proc`` cannot be read (not Linux). ``read`` and ``sleep`` are injectable so
    the arithmetic can be tested on worked-out ``/proc`` texts.
    """
    try:
        cpus = set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return None
    try:
        before = _cpu_ticks(cpus, read("/proc/stat"))
        own_before = _own_ticks(read("/proc/self/stat"))
        sleep(seconds)
        after = _cpu_ticks(cpus, read("/proc/stat"))
        own_after = _own_ticks(read("/proc/self/stat"))
    except (OSError, ValueError, IndexError):
        return None
    if before is None or after is None:
        return None
    d_busy, d_total = after[0] - before[0], after[1] - before[1]
    if d_total <= 0:
        return None
    others = max(0, d_busy - (own_after - own_before))
    return len(cpus) * others / d_total


def choose_omp_wait_policy(
    environ: MutableMapping[str, str] = os.environ,
    busy: Callable[[], float | None] = cores_busy_elsewhere,
) -> dict[str, object]:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` when other work is using our cores.

    Keeps a value already set. Returns (and stores in :data:`OMP_CHOICE`) what was decided and why.
    """
    if "OMP_WAIT_POLICY" in environ:
        choice: dict[str, object] = {
            "policy": environ["OMP_WAIT_POLICY"],
            "reason": "set by the user (OMP_WAIT_POLICY)",
            "busy_cores_elsewhere": None,
        }
    else:
        measured = busy()
        if measured is None:
            environ["OMP_WAIT_POLICY"] = "PASSIVE"
            choice = {"policy": "PASSIVE", "reason": "CPU use unknown (no /proc)"}
        elif measured >= BUSY_THRESHOLD:
            environ["OMP_WAIT_POLICY"] = "PASSIVE"
            choice = {
                "policy": "PASSIVE",
                "reason": f"{measured:.2f} cores busy with other work at start",
            }
        else:
            choice = {
                "policy": "default",
                "reason": f"cores idle at start ({measured:.2f} busy with other work)",
            }
        choice["busy_cores_elsewhere"] = measured
    OMP_CHOICE.clear()
    OMP_CHOICE.update(choice)
    return dict(choice)


def run_environment() -> dict[str, object]:
    """Where a run ran, for its results file: Python, platform, cores, load and OpenMP policy.

    Timings in a results file mean little without these (the wait policy alone moves evaluation
    time 2.3x), so every run kind records the same dictionary.
    """
    import platform

    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": load,
        "omp_wait_policy": OMP_CHOICE.get("policy"),
        "omp_wait_policy_reason": OMP_CHOICE.get("reason"),
    }
