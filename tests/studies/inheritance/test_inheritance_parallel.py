"""Replicates of the inheritance study in parallel (inheritance.workers / scale): a process pool
gives the same results as one process, a run killed with kill -9 mid-way resumes per replicate
(equal to a clean run, no finished replicate redone, no worker left writing), and the pool runs
the real embedded model end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_inheritance_replicates import SeedTrainer, _config, shifted_loader
from weights import PIPELINE_WEIGHTS

from synthbias.config import parse_config
from synthbias.core.parallel import ParallelError
from synthbias.studies.inheritance.console import workers_note
from synthbias.studies.inheritance.runner import run_inheritance

HERE = Path(__file__).resolve().parent


class SlowTrainer(SeedTrainer):
    """The seeded fake trainer, slowed for the seeds in ``slow`` (seconds per adapter); it
    leaves a marker per call started (seed, order, process id) in ``markers``."""

    def __init__(self, markers: str, slow: dict[int, float] | None = None) -> None:
        super().__init__()
        self.markers, self.slow = markers, slow or {}

    def __call__(self, records: Any, out_dir: Path, seed: int) -> dict[str, Any]:
        folder = Path(self.markers)
        folder.mkdir(parents=True, exist_ok=True)
        n = len(list(folder.glob(f"s{seed}-*")))
        (folder / f"s{seed}-{n}-{os.getpid()}").write_text("")
        time.sleep(self.slow.get(seed, 0.0))
        return super().__call__(records, out_dir, seed)


def _cfg(**over: Any) -> Any:
    return _config(ratios=[0.0, 1.0], replicates=3, **over)


def run_killable(out: str, markers: str) -> None:
    """The subprocess's run: 3 replicates on 2 workers, replicate 2 slow."""
    run_inheritance(
        _cfg(workers=2),
        out,
        trainer=SlowTrainer(markers, {2: 3.0}),
        backend_loader=shifted_loader,
    )


def _same_results(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["replicate_effects"] == b["replicate_effects"]
    assert a["headlines"] == b["headlines"]
    assert [c["adapter"] for c in a["conditions"]] == [c["adapter"] for c in b["conditions"]]
    assert a["augmentation_checks"] == b["augmentation_checks"]


def test_workers_and_scale_config() -> None:
    assert _cfg().inheritance.workers == 1 and _cfg().inheritance.scale == "local"
    assert _cfg(workers="auto").inheritance.workers == "auto"
    with pytest.raises(Exception, match="workers"):
        _cfg(workers=0)
    with pytest.raises(Exception, match="scale"):
        _cfg(scale="slurm")


def test_scale_ray_without_ray_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ParallelError, match="pip install"):
        run_inheritance(
            _cfg(scale="ray"), tmp_path, trainer=SeedTrainer(), backend_loader=shifted_loader
        )


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _stored(out: Path) -> dict[str, int]:
    """Every finished unit (evaluation file, trained adapter's marker) and its mtime."""
    files = list(out.glob("evals/*.json")) + list(out.glob("adapters/*/synthbias_train.json"))
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in files}


def test_kill9_mid_run_resumes_per_replicate(tmp_path: Path) -> None:
    killed, markers = tmp_path / "killed", tmp_path / "markers"
    code = (
        f"import sys; sys.path[:0] = {[str(HERE), str(HERE.parents[1])]!r}; "
        f"from test_inheritance_parallel import run_killable; "
        f"run_killable({str(killed)!r}, {str(markers)!r})"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        # replicate 2 starts once replicate 0 or 1 is done; kill in its second training
        while not list(markers.glob("s2-1-*")):
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the run never reached replicate 2"
            time.sleep(0.05)
        workers = {int(p.name.rsplit("-", 1)[1]) for p in markers.iterdir()}
        os.kill(proc.pid, signal.SIGKILL)  # the run itself, not its workers
        proc.wait(timeout=30)
        time.sleep(1.0)
        # its workers died with it: nothing writes behind the resumed run
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (killed / "results.json").exists()
    before = _stored(killed)
    done = {p for p in before if p.startswith("adapters/")}
    assert 3 <= len(done) < 9  # at least one replicate finished training, not all

    kw = {"trainer": SeedTrainer(), "backend_loader": shifted_loader}
    resumed = run_inheritance(_cfg(workers=2), killed, **kw)
    clean = run_inheritance(_cfg(), tmp_path / "clean", **kw)
    _same_results(resumed, clean)  # a pool of 2, resumed, equals one process run clean
    assert clean["steps"]["train"]["ran"] == 9  # 3 models in each of 3 replicates
    assert resumed["parallel"]["workers"] == 2 and clean["parallel"]["workers"] == 1
    assert "summed over 2 local workers" in workers_note(resumed)
    assert workers_note(clean) == ""
    after = _stored(killed)
    assert {p: after[p] for p in before} == before  # nothing finished was redone
    assert resumed["steps"]["train"]["ran"] == 9 - len(done)
    assert resumed["steps"]["train"]["reused"] == len(done)
    n_evals = sum(p.startswith("evals/") for p in before)
    assert resumed["steps"]["evaluate"]["reused"] == n_evals >= 3


REAL = {
    "name": "e2e-pool",
    "kind": "inheritance",
    "generator": {
        "backend": "llamacpp",
        "batch_size": 16,
        "n_ctx": 512,
        "options": {"weights": PIPELINE_WEIGHTS},
    },
    "sampling": {"max_tokens": 16},
    "measure": {"n_resamples": 100},
    "inheritance": {
        "bias_types": ["gender"],
        "dimensions": ["explicit", "value"],
        "fallback": ["prompt"],
        "n_real": 8,
        "n_augmented": 8,
        "ratios": [0.0, 1.0],
        "replicates": 2,
        "workers": 2,
        "tasks": ["coreference"],
        "n_eval": 23,
        "misalignment": False,
        "eval_base": False,
        "eval_weights": "f32",
        "finetune": {"max_steps": 2, "batch_size": 4, "learning_rate": 0.003, "max_length": 48},
    },
}


@pytest.mark.slow
def test_real_model_replicates_on_a_pool(tmp_path: Path) -> None:
    """Two replicates of the real pipeline (generate, LoRA, llama.cpp scoring) on two worker
    processes of one thread each; a rerun reuses every unit."""
    cfg = parse_config(yaml.safe_load(yaml.safe_dump(REAL)))
    res = run_inheritance(cfg, tmp_path)
    assert res["replication"]["n_replicates"] == 2
    assert {r["seed"] for r in res["replicate_effects"]} == {0, 1}
    assert res["steps"]["train"]["ran"] == 4 and res["steps"]["evaluate"]["ran"] == 4
    info = [json.loads(p.read_text()) for p in tmp_path.glob("adapters/*/synthbias_train.json")]
    assert len(info) == 4 and all(i["steps"] >= 1 for i in info)
    again = run_inheritance(cfg, tmp_path)
    assert again["steps"]["train"]["ran"] == 0 and again["steps"]["evaluate"]["ran"] == 0
    assert again["replicate_effects"] == res["replicate_effects"]
