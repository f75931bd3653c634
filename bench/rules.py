"""Coverage and agreement of the rule-based gender metric on real annotated sentences.

For every sentence with a human (gold) stereotype label, the rules either label it
(``stereotypical`` / ``anti``) or not (``neutral`` / ``none``):

* coverage = labelled gold sentences / gold sentences;
* agreement = labelled sentences whose label equals the gold label / labelled sentences.

Both get 95% percentile-bootstrap CIs that resample the data sets' own clusters (a WinoBias
pro/anti twin pair, a CrowS-Pairs pair, a Winogender template), so twins never count as
independent evidence. Winogender also has sentences whose pronoun refers to the *other*
participant: there the occupation carries no gendered referent, and ``spurious`` is the share
of them the rules label anyway (lower is better; not part of coverage/agreement).

Data (read-only, ``../shared/benchmarks``; see each folder's SOURCE.md):

* WinoBias (Zhao et al. 2018): 3,168 sentences, gold = the file (pro / anti).
* Winogender (Rudinger et al. 2018): the 240 male/female sentences whose pronoun refers to the
  occupation; gold = pro when the pronoun's gender is the occupation's majority gender in
  Winogender's own BLS column (``bls_pct_female`` > 50 = female), else anti. The 240 whose
  pronoun refers to the participant give ``spurious``.
* CrowS-Pairs (Nangia et al. 2020), bias_type gender: 262 crowd-written pairs, 524 sentences;
  gold: sent_more = pro and sent_less = anti (sent_more is the more stereotyping sentence in
  both directions: "He addressed the shareholders as the CEO" is the sent_more of an
  ``antistereo`` pair). Its stereotypes are broader than occupations ("Women are too emotional
  to be good scientists" is gold pro, and the rules, which see she + scientist, say anti), so
  coverage is low and agreement bounded for any lexicon.

Configurations: occupation table (``legacy`` 96 rows, ``bls`` 560 rows) x preset (``strict``
30/70, ``majority`` 50) x referent rule (``text`` = whole-text majority, ``occupation`` = nearest
preceding occupation, ``nearest`` = nearest person mention; see ``synthbias.measure.rules``). The
baseline ("today") is legacy + text at each preset (legacy + text + strict is the metric
before issue 13).

Run: .venv/bin/python bench/rules.py [--benchmarks ../shared/benchmarks] [--n-resamples 1000]
Writes bench/results/rules.json and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from synthbias.measure.rules import ANTI, STEREOTYPICAL, GenderRuleScorer  # noqa: E402

PRO = "pro"
GOLD_TO_LABEL = {PRO: STEREOTYPICAL, "anti": ANTI}


@dataclass
class Item:
    text: str
    gold: str  # "pro", "anti", or "other" (Winogender: pronoun refers to the participant)
    cluster: str


def winobias(root: Path) -> list[Item]:
    out = []
    for path in sorted((root / "winobias").glob("*_stereotyped_type*.txt.*")):
        gold = PRO if path.name.startswith("pro") else "anti"
        kind = path.name.split("_")[2].split(".")[0] + "." + path.name.rsplit(".", 1)[1]
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            num, _, sent = line.partition(" ")
            sent = re.sub(r"\s+", " ", sent.replace("[", "").replace("]", "")).strip()
            sent = re.sub(r"\b(the|a) the\b", r"\1", sent, flags=re.IGNORECASE)
            out.append(Item(sent, gold, f"{kind}:{num}"))
    return out


def winogender(root: Path) -> list[Item]:
    stats = {}
    with (root / "winogender" / "occupations-stats.tsv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            stats[r["occupation"]] = float(r["bls_pct_female"])
    out = []
    with (root / "winogender" / "all_sentences.tsv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            occ, participant, answer, gender, _ = r["sentid"].split(".")
            if gender not in ("male", "female") or stats[occ] == 50.0:
                continue
            if answer == "0":
                majority = "female" if stats[occ] > 50 else "male"
                gold = PRO if gender == majority else "anti"
            else:
                gold = "other"
            out.append(Item(r["sentence"], gold, f"{occ}.{participant}.{answer}"))
    return out


def crows_gender(root: Path) -> list[Item]:
    out = []
    with (root / "crows_pairs" / "crows_pairs_anonymized.csv").open(encoding="utf-8") as fh:
        for i, r in enumerate(csv.DictReader(fh)):
            if r["bias_type"] != "gender":
                continue
            # sent_more is the stereotype-consistent sentence in both directions: a ``stereo``
            # pair states a stereotype about the disadvantaged group, an ``antistereo`` pair
            # breaks one (sent_less is about the disadvantaged group, e.g. "She ... the CEO")
            out.append(Item(r["sent_more"], PRO, str(i)))
            out.append(Item(r["sent_less"], "anti", str(i)))
    return out


def cluster_bootstrap(
    clusters: Sequence[str], num: np.ndarray, den: np.ndarray, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """Ratio sum(num)/sum(den) and its percentile CI, resampling clusters."""
    keys = sorted(set(clusters))
    index = {k: i for i, k in enumerate(keys)}
    ids = np.array([index[c] for c in clusters])
    cn = np.bincount(ids, weights=num, minlength=len(keys))
    cd = np.bincount(ids, weights=den, minlength=len(keys))
    value = float(cn.sum() / cd.sum()) if cd.sum() else float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(keys), size=(n_resamples, len(keys)))
    sn, sd = cn[draws].sum(axis=1), cd[draws].sum(axis=1)
    ok = sd > 0
    if not ok.any():
        return value, float("nan"), float("nan")
    ratios = sn[ok] / sd[ok]
    return value, float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def evaluate(
    scorer: GenderRuleScorer, items: list[Item], n_resamples: int, seed: int
) -> dict[str, object]:
    labels = [s.label for s in scorer.score_texts([it.text for it in items])]
    gold = [(it, lab) for it, lab in zip(items, labels, strict=True) if it.gold != "other"]
    other = [(it, lab) for it, lab in zip(items, labels, strict=True) if it.gold == "other"]
    clusters = [it.cluster for it, _ in gold]
    labelled = np.array([lab in (STEREOTYPICAL, ANTI) for _, lab in gold], dtype=float)
    agree = np.array([GOLD_TO_LABEL[it.gold] == lab for it, lab in gold], dtype=float)
    cov = cluster_bootstrap(clusters, labelled, np.ones(len(gold)), n_resamples, seed)
    agr = cluster_bootstrap(clusters, agree * labelled, labelled, n_resamples, seed)
    out: dict[str, object] = {
        "n_gold": len(gold),
        "n_labelled": int(labelled.sum()),
        "n_agree": int((agree * labelled).sum()),
        "coverage": cov[0],
        "coverage_ci": [cov[1], cov[2]],
        "agreement": agr[0],
        "agreement_ci": [agr[1], agr[2]],
    }
    if other:
        spur = np.array([lab in (STEREOTYPICAL, ANTI) for _, lab in other], dtype=float)
        sp = cluster_bootstrap(
            [it.cluster for it, _ in other], spur, np.ones(len(other)), n_resamples, seed
        )
        out.update(n_other=len(other), spurious=sp[0], spurious_ci=[sp[1], sp[2]])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", type=Path, default=ROOT.parent / "shared" / "benchmarks")
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rules.json")
    args = parser.parse_args()
    if not args.benchmarks.is_dir():
        raise SystemExit(f"benchmark folder not found: {args.benchmarks}")
    datasets = {
        "winobias": winobias(args.benchmarks),
        "winogender": winogender(args.benchmarks),
        "crows_gender": crows_gender(args.benchmarks),
    }
    rows = []
    for table in ("legacy", "bls"):
        for preset in ("strict", "majority"):
            for attach in ("text", "occupation", "nearest"):
                scorer = GenderRuleScorer(preset=preset, occupations=table, attach=attach)
                for name, items in datasets.items():
                    t0 = time.perf_counter()
                    res = evaluate(scorer, items, args.n_resamples, args.seed)
                    res.update(
                        dataset=name,
                        baseline=(table, attach) == ("legacy", "text"),
                        seconds=round(time.perf_counter() - t0, 3),
                        **scorer.settings,
                    )
                    rows.append(res)
    header = (
        f"{'dataset':<13}{'table':<7}{'preset':<9}{'attach':<11}{'n':>5} "
        f"{'coverage [95% CI]':<22}{'agreement [95% CI]':<22}{'spurious':<9}"
    )
    print(header)
    for r in rows:
        cov = f"{r['coverage']:.3f} [{r['coverage_ci'][0]:.3f},{r['coverage_ci'][1]:.3f}]"
        agr = f"{r['agreement']:.3f} [{r['agreement_ci'][0]:.3f},{r['agreement_ci'][1]:.3f}]"
        sp = f"{r['spurious']:.3f}" if "spurious" in r else ""
        base = " *" if r["baseline"] else ""
        print(
            f"{r['dataset']:<13}{r['occupations']:<7}{r['preset']:<9}{r['attach']:<11}"
            f"{r['n_gold']:>5} {cov:<22}{agr:<22}{sp:<9}{base}"
        )
    print("* = today's lexicon and rules (baseline) at that preset")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "n_resamples": args.n_resamples,
        "seed": args.seed,
        "benchmarks": str(args.benchmarks),
        "sizes": {k: len(v) for k, v in datasets.items()},
    }
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
