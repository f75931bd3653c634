"""The OpenMP wait policy chosen at import from how busy the cores are (synthbias.core.cpu)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from synthbias.core import cpu


@pytest.fixture(autouse=True)
def _keep_choice():
    """The tests below call choose_omp_wait_policy; keep this process's real choice afterwards."""
    saved = dict(cpu.OMP_CHOICE)
    yield
    cpu.OMP_CHOICE.clear()
    cpu.OMP_CHOICE.update(saved)


def _stat(cpu_rows: dict[int, tuple[int, int]]) -> str:
    """A /proc/stat text whose cpuN rows have the given (busy, idle) jiffies."""
    lines = ["cpu  1 1 1 1 0 0 0 0 0 0"]
    for n, (busy, idle) in cpu_rows.items():
        lines.append(f"cpu{n} {busy} 0 0 {idle} 0 0 0 0 0 0")
    lines.append("intr 12345")
    return "\n".join(lines) + "\n"


def _self_stat(utime: int, stime: int) -> str:
    # pid (comm with spaces) state, then fields 4..; utime and stime are fields 14 and 15
    rest = ["S"] + ["0"] * 10 + [str(utime), str(stime)] + ["0"] * 30
    return "4242 (py thon) " + " ".join(rest)


def _reader(texts: list[dict[str, str]]):
    calls = {"n": 0}

    def read(path: str) -> str:
        snapshot = texts[0] if calls["n"] < 2 else texts[1]
        calls["n"] += 1
        return snapshot[path]

    return read


def test_busy_cores_elsewhere_subtracts_own_use_and_counts_only_usable_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    before = {
        "/proc/stat": _stat({0: (100, 100), 1: (100, 100), 2: (0, 0)}),
        "/proc/self/stat": _self_stat(5, 5),
    }
    # over the window: cpu0 +10 busy +0 idle, cpu1 +4 busy +6 idle (20 jiffies on 2 cpus), cpu2 is
    # not ours (+50 busy ignored); this process used 4 of the 14 busy jiffies
    after = {
        "/proc/stat": _stat({0: (110, 100), 1: (104, 106), 2: (50, 0)}),
        "/proc/self/stat": _self_stat(7, 7),
    }
    busy = cpu.cores_busy_elsewhere(0.0, read=_reader([before, after]), sleep=lambda s: None)
    assert busy == pytest.approx(2 * (14 - 4) / 20)  # 1.0 core busy with other work


def test_busy_cores_elsewhere_is_none_without_proc(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})

    def missing(path: str) -> str:
        raise FileNotFoundError(path)

    assert cpu.cores_busy_elsewhere(0.0, read=missing, sleep=lambda s: None) is None


def test_policy_keeps_a_user_value_and_otherwise_follows_the_measured_load():
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    choice = cpu.choose_omp_wait_policy(env, busy=lambda: 1.5)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and "user" in choice["reason"]

    env = {}
    choice = cpu.choose_omp_wait_policy(env, busy=lambda: 0.05)
    assert "OMP_WAIT_POLICY" not in env and choice["policy"] == "default"
    assert cpu.OMP_CHOICE["busy_cores_elsewhere"] == 0.05

    env = {}
    choice = cpu.choose_omp_wait_policy(env, busy=lambda: cpu.BUSY_THRESHOLD)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and "0.30 cores busy" in choice["reason"]

    env = {}
    assert cpu.choose_omp_wait_policy(env, busy=lambda: None)["policy"] == "PASSIVE"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc")
def test_a_busy_loop_in_another_process_is_measured_and_makes_threads_sleep():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        env: dict[str, str] = {}
        choice = cpu.choose_omp_wait_policy(env, busy=lambda: cpu.cores_busy_elsewhere(0.3))
    finally:
        spinner.kill()
        spinner.wait()
    assert choice["busy_cores_elsewhere"] >= 0.6  # one core spinning (a little kernel time aside)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"


def test_run_environment_records_the_policy_choice():
    env = cpu.run_environment()
    assert env["omp_wait_policy"] == cpu.OMP_CHOICE["policy"]
    assert env["omp_wait_policy_reason"] == cpu.OMP_CHOICE["reason"]
    assert env["usable_cpus"] == len(os.sched_getaffinity(0))
