"""The run store: atomic writes, the manifest, and the folder lock (a second run on a folder is
refused with the folder and the owner's pid; a lock left by a dead process is taken over)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthbias.cli import app
from synthbias.core.store import (
    LOCK_NAME,
    RunLock,
    RunLockedError,
    RunStore,
    atomic_write,
    atomic_write_text,
    write_json,
    write_table,
)

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_atomic_write_keeps_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temp file left
    assert target.stat().st_mode & 0o777 == 0o644 & ~_umask()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_write_json_and_table_round_trip(tmp_path: Path) -> None:
    import numpy as np

    write_json(tmp_path / "r.json", {"x": np.float64(0.25), "p": tmp_path})
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": 0.25, "p": str(tmp_path)}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_json(tmp_path / "bad.json", {"o": object()})
    assert not (tmp_path / "bad.json").exists()
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for name in ("t.csv", "t.parquet"):
        write_table(df, tmp_path / name)
    assert pd.read_csv(tmp_path / "t.csv").equals(df)
    assert pd.read_parquet(tmp_path / "t.parquet").equals(df)


def test_manifest_refuses_another_config(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.check_manifest("aaaa", "0.1.0", resume=True, config_yaml="seed: 0\n")
    assert store.read_json("manifest.json")["config_hash"] == "aaaa"
    assert (tmp_path / "config.yaml").read_text() == "seed: 0\n"
    with pytest.raises(FileExistsError, match=r"hash aaaa != bbbb"):
        store.check_manifest("bbbb", "0.1.0", resume=True)
    store.check_manifest("bbbb", "0.1.0", resume=False)  # --overwrite
    assert store.read_json("manifest.json")["config_hash"] == "bbbb"
    assert store.read_json("missing.json") is None
    assert (
        store.write_jsonl("s.jsonl", [{"a": 1}, '{"b": 2}']).read_text() == '{"a": 1}\n{"b": 2}\n'
    )
    store.write_table("t.csv", pd.DataFrame({"a": [1]}))
    assert store.write_text("x/y.txt", "hi") == tmp_path / "x" / "y.txt"
    assert (tmp_path / "t.csv").read_text() == "a\n1\n"
    assert store.write_json("j.json", [1]).read_text() == "[\n  1\n]\n"


def test_lock_is_reentrant_and_released(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        owner = json.loads((tmp_path / LOCK_NAME).read_text())
        assert owner["pid"] == os.getpid()
        with RunLock(tmp_path):  # e.g. run_experiment calling run_equilibrium
            pass
        assert (tmp_path / LOCK_NAME).exists()  # the outer holder still holds it
    assert not (tmp_path / LOCK_NAME).exists()
    fresh = tmp_path / "new" / "run"
    with RunLock(fresh):
        assert fresh.is_dir()
    assert not fresh.exists() and (tmp_path / "new").is_dir()  # only the folder it made


def test_stale_lock_is_taken_over(tmp_path: Path) -> None:
    dead = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": "h", "started": "t"}))
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_second_process_on_a_locked_folder_is_refused(tmp_path: Path) -> None:
    """A real second process (the CLI) on a folder this process is running in exits 2 at once,
    naming the folder and our pid; it writes nothing there."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "synthbias.cli", "equilibrium", "--backend", "fake"]
    cmd += ["--no-embedding", "--n", "4", "--generations", "1", "--levels", "0.5", "-q"]
    cmd += ["--out", str(out)]
    with RunLock(out):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
    msg = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, msg
    assert str(out.resolve()) in msg and f"pid {os.getpid()}" in msg
    assert not out.exists()  # refused before writing anything; the holder made and removed it


def test_runner_refused_while_another_process_holds_the_folder(tmp_path: Path) -> None:
    from synthbias.config import parse_config
    from synthbias.studies.equilibrium.runner import run_equilibrium

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from synthbias.core.store import RunLock; "
            f"l = RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); "
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        cfg = parse_config({"generator": {"backend": "fake"}, "measure": {"embedding": False}})
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid}\b") as info:
            run_equilibrium(cfg, tmp_path)
        assert str(tmp_path.resolve()) in str(info.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    # the holder has exited: its kernel lock is gone and its file was removed; a run may start
    with RunLock(tmp_path):
        pass


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "--out", "x.jsonl", "--prompt", "hi", "--backend", "fake", "--n", "-3"],
        ["generate", "--out", "x.jsonl", "--prompt", "hi", "--backend", "fake", "--n", "0"],
        ["generate", "--out", "x.jsonl", "--prompt", "hi", "--max-tokens", "0"],
        ["equilibrium", "--backend", "fake", "--generations", "0"],
        ["equilibrium", "--backend", "fake", "--n", "-1"],
        ["equilibrium", "--backend", "fake", "--k-shots", "0"],
        ["equilibrium", "--backend", "fake", "--batch-size", "0"],
        ["measure", "x.jsonl", "--n-resamples", "0"],
        ["bench-bias", "--limit", "0"],
        ["audit", "x.jsonl", "--n-resamples", "-5"],
        ["forecast", "run", "--generations", "0"],
        ["forecast", "run", "--n-resamples", "0"],
        ["report", "run", "--max-samples", "0"],
    ],
)
def test_cli_count_options_reject_values_below_one(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "x>=1" in " ".join(res.output.split()) or "Invalid value" in res.output
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.slow
def test_real_run_refuses_a_second_run_on_its_folder(tmp_path: Path) -> None:
    """End to end on the embedded model: while a real equilibrium run writes its folder, a
    second run on it exits 2 at once naming the folder and the first run's pid; the first run
    finishes normally and releases the folder."""
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "synthbias.cli", "equilibrium", "--backend", "llamacpp"]
    cmd += ["--no-embedding", "--n", "16", "--generations", "1", "--levels", "0.5", "--chains", "1"]
    cmd += ["--max-tokens", "24", "--batch-size", "4", "--n-resamples", "50", "-q"]
    first = subprocess.Popen(
        [*cmd, "--out", str(out)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK_NAME).exists():
            assert first.poll() is None, first.stdout.read().decode()
            assert time.monotonic() < deadline, "the first run never locked its folder"
            time.sleep(0.05)
        t0 = time.monotonic()
        second = subprocess.run(
            [*cmd, "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=120
        )
        msg = " ".join((second.stdout + second.stderr).split())
        assert second.returncode == 2, msg
        # refused while the first still held the folder (its pid is read from the lock), and
        # at once rather than after waiting for it (16 texts keep the first run busy)
        assert str(out.resolve()) in msg and f"pid {first.pid}" in msg
        assert time.monotonic() - t0 < 30
        assert first.wait(timeout=600) == 0, first.stdout.read().decode()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["backend"] == "llama.cpp"
    assert [g["n"] for g in results["levels"][0]["generations"]] == [16, 16]
    assert not (out / LOCK_NAME).exists()  # released on exit


def test_folder_kind_and_output_folder_check(tmp_path: Path) -> None:
    """What a folder holds decides what may be written there: another kind of run never."""
    from synthbias.core.store import OutputFolderError, check_output_folder, folder_kind

    assert folder_kind(tmp_path / "new") is None and folder_kind(tmp_path) is None
    assert check_output_folder(tmp_path / "new", "audit") is None
    eq = tmp_path / "eq"
    eq.mkdir()
    (eq / "config.yaml").write_text("seed: 0\n")  # a run stopped before its results, old config
    assert folder_kind(eq) == "equilibrium"
    (eq / "results.json").write_text(json.dumps({"kind": "inheritance"}))
    assert folder_kind(eq) == "inheritance"
    RunStore(eq).check_manifest("h", "0.1.0", resume=True, kind="mitigation")
    assert folder_kind(eq) == "mitigation"  # the manifest's word first
    assert check_output_folder(eq, "mitigation") == "mitigation"
    with pytest.raises(OutputFolderError, match=r"holds a mitigation run; writing an audit"):
        check_output_folder(eq, "audit")
    audit = tmp_path / "audit"
    (audit / "measure_cache").mkdir(parents=True)  # an audit killed while measuring
    assert folder_kind(audit) == "audit"
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(OutputFolderError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "f.txt", "audit")


def test_manifest_names_what_differs(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.check_manifest("a", "0.1.0", resume=True, kind="audit", what="input")
    assert store.read_json("manifest.json")["kind"] == "audit"
    with pytest.raises(FileExistsError, match="a run of a different input"):
        store.check_manifest("b", "0.1.0", resume=True, kind="audit", what="input")
