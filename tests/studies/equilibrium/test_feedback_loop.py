"""Real data in the loop (issue 31): mixing regimes, the one-generation prediction against a
simulated generator with a known calibration gap, today's configs unchanged; and issue 27's
prompt attachment and code-balanced default (items 1-2 leftovers)."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from synthbias.config import parse_config
from synthbias.core.hashing import stable_hash
from synthbias.core.records import Record
from synthbias.generate.fake import FAKE_SENTENCES, FakeBackend
from synthbias.generate.protocol import Completion, SamplingParams
from synthbias.lexicon import MALE_CODED
from synthbias.measure.config import MeasureConfig
from synthbias.measure.direction import CODE_BALANCED, CONDITIONAL, OCCUPATION_INDEX
from synthbias.measure.rules import GenderRuleScorer
from synthbias.stats import feedback_loop as fl
from synthbias.studies.equilibrium.config import EquilibriumStudyConfig
from synthbias.studies.equilibrium.fit import UndefinedFitMetric, check_code_balanced
from synthbias.studies.equilibrium.generation import (
    build_seed_corpus,
    mixed_shots,
    next_generation,
)
from synthbias.studies.equilibrium.loop import print_loop, run_equilibrium_loop
from synthbias.studies.equilibrium.measurer import GenderMeasurer
from synthbias.studies.equilibrium.runner import corpus_key, run_equilibrium
from synthbias.studies.equilibrium.steps import example_pool

# --------------------------------------------------------------------------- a known generator


class CalibratedGenerator:
    """A generator with a known map: it writes a stereotypical pairing for the prompt's
    occupation with probability a + c·x, x the stereotypical share of its examples' pairings
    (its calibration gap at x is a + (c − 1)·x)."""

    name = "calibrated"
    model_id = "calibrated-v1"

    def __init__(self, a: float, c: float) -> None:
        self.a, self.c = a, c
        self.scorer = GenderRuleScorer()

    def generate(self, prompts, params):  # type: ignore[no-untyped-def]
        out = []
        for i, prompt in enumerate(prompts):
            lines = [m.group(1) for m in re.finditer(r"(?m)^\d+\. (.*)$", prompt)]
            *examples, start = lines
            occ = re.match(r"The (.+) said that$", start).group(1)  # type: ignore[union-attr]
            labels = [s.label for s in self.scorer.score_texts(examples)]
            st, an = labels.count("stereotypical"), labels.count("anti")
            x = st / (st + an) if st + an else 0.5
            p = min(1.0, max(0.0, self.a + self.c * x))
            u = int(stable_hash([prompt, params.seed, i], 12), 16) / 16**12
            male_job = self.scorer.codes[self.scorer.prompt_occupation(occ)] == MALE_CODED
            he = male_job == (u < p)
            text = f" {'he' if he else 'she'} was ready to start."
            out.append(
                Completion(
                    text=text,
                    n_prompt_tokens=1,
                    n_tokens=5,
                    finish_reason="stop",
                    seed=params.seed,
                )
            )
        return out

    def close(self) -> None:
        pass


A, C = 0.5, 0.4  # b* = 0.833 without real data; gap at b_r = 0.2: +0.22


def loop_config(**study):  # type: ignore[no-untyped-def]
    base = {
        "kind": "equilibrium_loop",
        "generator": {"backend": "fake"},
        "study": {
            "levels": [0.2],
            "generations": 4,
            "n": 40,
            "chains": 4,
            "on_topic": "keep",
            "loop": {"real_shares": [0.0, 0.5], "calibration_levels": [0.8], "window": 2},
        }
        | study,
        "measure": {"embedding": False, "n_resamples": 50},
    }
    return parse_config(base)


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("loop")
    return out, run_equilibrium_loop(loop_config(), out, backend=CalibratedGenerator(A, C))


def test_prediction_recovers_known_b_star_in_each_regime(loop_run: tuple[Path, dict]) -> None:
    out, res = loop_run
    one = res["one_generation"]
    assert one["c_ci"]["low"] <= C <= one["c_ci"]["high"]
    assert len(res["cells"]) == 4  # 2 regimes x 2 real shares, one real level
    for cell in res["cells"]:
        truth = fl.fixed_point(A, C, cell["real_share"], cell["b_real"])
        fp = cell["predicted_b_star"]
        assert fp["ci_low"] <= truth <= fp["ci_high"], cell
        assert abs(fp["estimate"] - truth) < 0.08
        # the long chains land where the one-generation prediction says
        assert cell["agrees"], cell
    # real data in the loop holds the bias nearer the real share, in both regimes
    by = {(c["regime"], c["real_share"]): c for c in res["cells"]}
    for regime in ("replace", "accumulate"):
        assert (
            by[regime, 0.5]["predicted_b_star"]["estimate"]
            < by[regime, 0.0]["predicted_b_star"]["estimate"]
        )
    assert (
        by["replace", 0.5]["bound"]["bound"] >= by["replace", 0.5]["predicted_b_star"]["estimate"]
    )
    assert by["replace", 0.0]["bound"]["bound"] is None
    for name in ("loop.json", "loop.csv", "loop_trajectories.png", "results.json"):
        assert (out / name).is_file(), name
    buf = io.StringIO()
    print_loop(res, Console(file=buf, width=250), out)
    text = buf.getvalue()
    assert "Taori & Hashimoto (ICML 2023)" in text and "covers" in text and "δ(0.2)" in text


def _records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x]


def test_cells_share_generation_one_and_mix_as_configured(loop_run: tuple[Path, dict]) -> None:
    out, _ = loop_run
    cells = sorted((out / "cells").iterdir())
    gen1 = {(c / "corpora/level-0.2/gen-1.jsonl").read_bytes() for c in cells}
    assert len(gen1) == 1  # one generation 1 for every cell, the gen01 run's
    assert (out / "gen01/corpora/level-0.2/gen-1.jsonl").read_bytes() in gen1
    mixed = _records(out / "cells/replace-rho0.5/corpora/level-0.2/gen-2.jsonl")
    assert sum(r["meta"]["real_shots"] for r in mixed) == round(0.5 * 40 * 3)
    parents = {p.split("-")[1] for r in mixed for p in r["parents"]}
    assert parents == {"g0", "g1"}  # real (generation 0) and generation 1
    replace = _records(out / "cells/replace-rho0/corpora/level-0.2/gen-3.jsonl")
    assert {p.split("-")[1] for r in replace for p in r["parents"]} == {"g2"}
    acc = _records(out / "cells/accumulate-rho0/corpora/level-0.2/gen-3.jsonl")
    assert {p.split("-")[1] for r in acc for p in r["parents"]} == {"g0", "g1", "g2"}


def test_accumulate_draws_from_every_earlier_generation() -> None:
    gens = [[Record(id=f"g{k}-{i}", text=f"t{k}{i}") for i in range(3)] for k in range(3)]
    pool, real = example_pool(gens[-1], gens, "accumulate", 0.0)
    assert [r.id for r in pool] == [r.id for g in gens for r in g] and real is None
    pool, real = example_pool(gens[-1], gens, "replace", 0.25)
    assert pool is gens[-1] and real is gens[0]
    with pytest.raises(ValueError, match="needs earlier"):
        example_pool(gens[-1], (), "accumulate", 0.0)


def test_simulated_regimes_settle_where_predicted() -> None:
    """Pure simulation of both regimes with binomial texts: the gen 0 → 1 prediction of the mean
    of generations 8-10 covers the simulated chains' mean."""
    rng = np.random.default_rng(3)
    a, c, b_r, texts, chains = 0.35, 0.5, 0.2, 400, 8
    starts = [0.2] * chains + [0.8] * chains
    gen1 = [rng.binomial(texts, a + c * s) / texts for s in starts]
    fit = fl.fit_one_generation(starts, gen1)
    for regime in fl.REGIMES:
        for rho in (0.0, 0.25, 0.5):
            trajs = []
            for _ in range(chains):
                b = [b_r]
                for _ in range(10):
                    pool = b[-1] if regime == "replace" else np.mean(b)
                    p = a + c * (rho * b_r + (1 - rho) * pool)
                    b.append(rng.binomial(texts, p) / texts)
                trajs.append(b)
            pred = fl.predict_window(fit, rho, b_r, regime, 10, 3)
            obs = fl.observed_window(trajs, 3)
            assert fl.compare(pred, obs)["agrees"], (regime, rho)
            fp = fl.predict_fixed_point(fit, rho, b_r)
            assert fp.contains(fl.fixed_point(a, c, rho, b_r)), (regime, rho)
    # the bound holds the linear map's b* for 0 <= c <= 1, and is reached at c = 1
    for cc in (0.0, 0.5, 1.0):
        one = fl.OneGenerationFit(0.3 + (1 - cc) * 0.0, cc, np.zeros((2, 2)), 2.0, 5, 0.95, ())
        bound = fl.taori_hashimoto_bound(one, 0.25, 0.2)["bound"]
        b_star = fl.fixed_point(one.a, cc, 0.25, 0.2)
        assert b_star <= bound + 1e-12
        if cc == 1.0:
            assert b_star == pytest.approx(bound)


def test_mixed_shots_place_the_real_share_exactly() -> None:
    real = [Record(id=f"r{i}", text=f"real {i}", source="seed") for i in range(10)]
    syn = [Record(id=f"s{i}", text=f"syn {i}", source="synthetic") for i in range(10)]
    shots = mixed_shots(syn, real, 20, 3, 0.25, np.random.default_rng(0))
    assert sum(r.source == "seed" for ex in shots for r in ex) == 15
    assert all(len(ex) == 3 and len({r.id for r in ex}) == 3 for ex in shots)


# --------------------------------------------------------------------------- today's configs


#: sha256 of every corpus a small fake-backend run writes, taken before the mixing regimes
#: were added (issue 31): today's configs must give today's corpora, byte for byte.
TODAY_CORPORA = "27a1b3a5e58ff154db5ad9113161016f2bbc550e49e57d8fdc046efffd648e0c"
TODAY = {
    "generator": {"backend": "fake"},
    "study": {"levels": [0.1, 0.6], "generations": 3, "n": 10, "chains": 3},
    "measure": {"embedding": False, "n_resamples": 50},
}


def _corpora_hash(out: Path) -> str:
    h = hashlib.sha256()
    for f in sorted((out / "corpora").rglob("gen-*.jsonl")):
        h.update(str(f.relative_to(out)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("explicit", [False, True])
def test_todays_configs_give_todays_corpora(tmp_path: Path, explicit: bool) -> None:
    cfg = TODAY | (
        {"study": TODAY["study"] | {"real_share": 0.0, "regime": "replace"}} if explicit else {}
    )
    res = run_equilibrium(parse_config(cfg), tmp_path, backend=FakeBackend(FAKE_SENTENCES))
    assert _corpora_hash(tmp_path) == TODAY_CORPORA
    assert corpus_key(parse_config(cfg)) == corpus_key(parse_config(TODAY))
    # the default fit metric (code-balanced) is undefined on these fake corpora: no fit, and
    # the note names the size it needs (never a NaN b*)
    eq = res["equilibrium"]
    assert "a" not in eq and eq["error"] == "undefined fit metric"
    assert "study.n" in eq["note"] and "undefined for" in eq["note"]


def test_a_real_share_changes_the_corpora_key() -> None:
    mixed = TODAY | {"study": TODAY["study"] | {"real_share": 0.25}}
    assert corpus_key(parse_config(mixed)) != corpus_key(parse_config(TODAY))


# --------------------------------------------------------------------------- issue 27, items 1-2


def test_study_attaches_to_the_prompt_occupation() -> None:
    """On model-written text, a pairing of somebody else is not the prompt occupation's."""
    text = (
        "The eligibility interviewer said that Christine was a doctor and Steven was an "
        "ambulance driver."
    )
    rec = Record(
        id="x", text=text, meta={"prompt_occupation": "eligibility interviewer", "opening": ""}
    )
    m = GenderMeasurer(MeasureConfig(embedding=False))
    assert m.attach_to_prompt
    codes = m.per_text([rec], CONDITIONAL)["codes"]
    assert codes[0] % 10 in (0, 10) and codes[0] // 10 == OCCUPATION_INDEX["female-coded"]


def test_code_balanced_share_is_the_default_fit_metric() -> None:
    assert EquilibriumStudyConfig().fit_metric == CODE_BALANCED


def test_code_balanced_undefined_names_the_size() -> None:
    # chain 1's generation 1 pairs only male-coded texts (female-coded ones unpaired)
    both = np.array([11, 9, 21, 19] * 5)
    one_code = np.array([11, 9, 20, 20] * 5)
    data = [[[both, both], [both, one_code], [both, both]]]
    with pytest.raises(UndefinedFitMetric, match=r"study\.n ≥ \d+ texts") as exc:
        check_code_balanced(data, [0.3], CODE_BALANCED, n=20)
    assert "chain 1, generation 1: no paired female-coded text" in str(exc.value)
    check_code_balanced(data, [0.3], CONDITIONAL, n=20)  # the pooled share is defined there


def test_seed_corpus_still_scores_as_designed_with_attachment() -> None:
    m = GenderMeasurer(MeasureConfig(embedding=False))
    recs = build_seed_corpus(0.3, 20, m.seed_vocabulary(), seed=0)
    m.check_seed_corpus(recs)
    nxt = next_generation(
        recs,
        FakeBackend(),
        SamplingParams(max_tokens=20),
        n=4,
        generation=1,
        prompt="work_occupation_said",
        vocab=m.seed_vocabulary(),
    )
    assert all(r.meta.get("prompt_occupation") for r in nxt)
