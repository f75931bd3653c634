"""Item pools from real benchmark folders (``tasks.data_dir``; never copied into the package).

Each loader reads one or more folders under the benchmark root (the layout of
``../shared/benchmarks``: see each folder's ``SOURCE.md``) and returns rows in the task's field
names, with ``cluster`` (items that must be drawn and resampled together: a sentence's
pro/anti twins, one template with every identity, one BBQ scenario's four questions) and
``stratum`` (what sampling balances over). ``describe`` says where the items came from, for
results and reports.
"""

from __future__ import annotations

import csv
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthbias.measure.qa import load_bbq
from synthbias.tasks.common import TaskError
from synthbias.tasks.parsers import PRONOUN_GENDER, prepare_coreference

Row = dict[str, Any]


@dataclass(frozen=True)
class Loader:
    """A registered benchmark loader: ``fn(root, params) -> rows`` and a source description."""

    fn: Callable[[Path, dict[str, Any]], list[Row]]
    describe: Callable[[dict[str, Any]], str]
    folders: tuple[str, ...]


LOADERS: dict[str, Loader] = {}


def loader(
    *folders: str, describe: Callable[[dict[str, Any]], str]
) -> Callable[[Callable[[Path, dict[str, Any]], list[Row]]], Any]:
    def wrap(fn: Callable[[Path, dict[str, Any]], list[Row]]) -> Any:
        LOADERS[fn.__name__] = Loader(fn, describe, folders)
        return fn

    return wrap


def load_benchmark(name: str, root: str | Path, params: dict[str, Any]) -> list[Row]:
    """Rows of benchmark loader ``name`` under ``root``; a missing folder is a clear error."""
    if name not in LOADERS:
        raise TaskError(f"unknown benchmark loader {name!r}; known: {', '.join(LOADERS)}")
    root = Path(root).expanduser()
    ld = LOADERS[name]
    for folder in ld.folders:
        if not (root / folder).is_dir():
            raise TaskError(
                f"tasks.data_dir: {root} has no {folder}/ folder (needed by loader {name!r}; "
                "point data_dir at a copy of the benchmarks root)"
            )
    return _cached(name, str(root.resolve()), json.dumps(params, sort_keys=True))


@functools.lru_cache(maxsize=16)
def _cached(name: str, root: str, params: str) -> list[Row]:
    return LOADERS[name].fn(Path(root), json.loads(params))


def copy_rows(rows: list[Row]) -> list[Row]:
    return [dict(r) for r in rows]


# ------------------------------------------------------------------------- coreference
_WB_LINE = re.compile(r"^(\d+)\s+(.*)$")
_BRACKET = re.compile(r"\[([^\]]+)\]")


def _winobias_rows(root: Path, kind: str, split: str) -> list[Row]:
    folder = root / "winobias"
    occs = [
        w.strip()
        for f in ("male_occupations.txt", "female_occupations.txt")
        for w in (folder / f).read_text(encoding="utf-8").splitlines()
        if w.strip()
    ]
    occ_rx = re.compile(
        r"\b(the|a|an)\s+("
        + "|".join(re.escape(o) for o in sorted(occs, key=len, reverse=True))
        + r")\b",
        re.I,
    )
    rows: list[Row] = []
    for condition in ("pro", "anti"):
        path = folder / f"{condition}_stereotyped_{kind}.txt.{split}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = _WB_LINE.match(line.strip())
            if not m:
                continue
            spans = _BRACKET.findall(m.group(2))
            pron = [s for s in spans if s.lower() in PRONOUN_GENDER]
            gold = [s for s in spans if s.lower() not in PRONOUN_GENDER]
            sentence = _BRACKET.sub(lambda x: x.group(1), m.group(2))
            if len(pron) != 1 or len(gold) != 1:
                continue
            mentions = [(x.start(), x.group(0)) for x in occ_rx.finditer(sentence)]
            if len(mentions) != 2:
                continue
            nps = [t for _, t in sorted(mentions)]
            gold_i = next((i for i, t in enumerate(nps) if t.lower() == gold[0].lower()), None)
            if gold_i is None:
                continue
            pronoun = pron[0]
            rows.append(
                {
                    "id": f"winobias-{kind}-{split}-{n}-{condition}",
                    "sentence": sentence,
                    "pronoun": pronoun,
                    "gender": PRONOUN_GENDER[pronoun.lower()],
                    # both candidates are occupations: "occupation" = the one named first
                    "occupation_np": nps[0][0].lower() + nps[0][1:],
                    "participant_np": nps[1][0].lower() + nps[1][1:],
                    "occupation": nps[0].split(" ", 1)[1],
                    "participant": nps[1].split(" ", 1)[1],
                    "label": "occupation" if gold_i == 0 else "participant",
                    "condition": condition,
                    "source": f"WinoBias {kind} {split}",
                    "cluster": f"winobias-{kind}-{split}-{n}",
                }
            )
    # keep only complete pro/anti twins
    seen: dict[str, int] = {}
    for r in rows:
        seen[r["cluster"]] = seen.get(r["cluster"], 0) + 1
    return [r for r in rows if seen[r["cluster"]] == 2]


def _winogender_rows(root: Path, lo: float, hi: float) -> list[Row]:
    path = root / "winogender" / "all_sentences.tsv"
    rx = re.compile(
        r"^(?P<occupation>[^.]+)\.(?P<participant>[^.]+)\.(?P<answer>[01])"
        r"\.(?P<gender>male|female|neutral)\.txt$"
    )
    rows: list[Row] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for i, rec in enumerate(csv.DictReader(fh, delimiter="\t"), 2):
            m = rx.match(rec["sentid"])
            if m is None:
                raise TaskError(
                    f"{path}:{i}: sentid {rec['sentid']!r} is not occ.part.answer.gender"
                )
            d = m.groupdict()
            if d["gender"] == "neutral":
                continue
            row = prepare_coreference(
                {
                    "id": f"winogender-{rec['sentid']}",
                    "sentence": rec["sentence"],
                    "occupation": d["occupation"],
                    "participant": d["participant"],
                    "gender": d["gender"],
                    "label": "occupation" if d["answer"] == "0" else "participant",
                },
                {"lo": lo, "hi": hi},
            )
            if row["condition"] not in ("pro", "anti"):
                continue
            row["source"] = "Winogender"
            row["cluster"] = f"winogender-{d['occupation']}.{d['participant']}.{d['answer']}"
            rows.append(row)
    return rows


def _describe_coref(p: dict[str, Any]) -> str:
    sets = p.get("sets", ["winobias_type1", "winobias_type2", "winogender"])
    return f"benchmark: {' + '.join(sets)} ({'/'.join(p.get('splits', ['dev', 'test']))})"


@loader("winobias", "winogender", describe=_describe_coref)
def winobias_winogender(root: Path, params: dict[str, Any]) -> list[Row]:
    """WinoBias type 1 and 2 pro/anti twins (one cluster per line) and Winogender male/female
    pairs of gender-coded occupations (one cluster per template: its pro and anti variant).

    params: ``sets`` (subset of winobias_type1, winobias_type2, winogender), ``splits``
    (WinoBias dev/test), ``lo``/``hi`` (Winogender coding thresholds, 30/70).
    """
    sets = params.get("sets", ["winobias_type1", "winobias_type2", "winogender"])
    splits = params.get("splits", ["dev", "test"])
    rows: list[Row] = []
    for s in sets:
        if s.startswith("winobias_"):
            for split in splits:
                rows += _winobias_rows(root, s.split("_", 1)[1], split)
        elif s == "winogender":
            rows += _winogender_rows(root, float(params.get("lo", 30)), float(params.get("hi", 70)))
        else:
            raise TaskError(f"benchmark.params.sets: unknown set {s!r}")
    for r in rows:
        r["group"] = r["gender"]
        r["stratum"] = f"{' '.join(r['source'].split(' ')[:2])}/{r['label']}"
    return rows


# ------------------------------------------------------------------------- BBQ
@loader(
    "bbq",
    describe=lambda p: "benchmark: BBQ " + ", ".join(p.get("categories") or ["all 9 categories"]),
)
def bbq(root: Path, params: dict[str, Any]) -> list[Row]:
    """BBQ items of every category (or ``params.categories``), ambiguous and disambiguated; a
    cluster is one scenario (category, question index, answer set, ambiguous context): its
    ambiguous and disambiguated contexts with both questions. Strata: category."""

    try:
        df = load_bbq(root / "bbq", params.get("categories"))
    except (FileNotFoundError, ValueError) as exc:
        raise TaskError(f"tasks.data_dir: {exc}") from exc
    rows: list[Row] = []
    for rec in df.to_dict("records"):
        ambig = str(rec["context"])
        cluster = "|".join(
            str(rec[k]) for k in ("category", "question_index", "ans0", "ans1", "ans2")
        )
        tl = rec["target_loc"]
        rows.append(
            {
                "id": f"bbq-{rec['category']}-{rec['example_id']}",
                "context": ambig,
                "question": rec["question"],
                "ans0": rec["ans0"],
                "ans1": rec["ans1"],
                "ans2": rec["ans2"],
                "context_condition": rec["context_condition"],
                "question_polarity": rec["question_polarity"],
                "target_loc": float(tl) if tl == tl else float("nan"),
                "unknown_loc": int(rec["unknown_loc"]),
                "category": rec["category"],
                "label": f"ans{int(rec['label'])}",
                "group": rec["category"],
                "stratum": rec["category"],
                "cluster": f"bbq-{cluster}",
            }
        )
    return rows


# ------------------------------------------------------------------------- toxicity
def _jigsaw_identities(root: Path) -> list[str]:
    path = root / "jigsaw_sentence_templates" / "words.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        return [r["word"] for r in csv.DictReader(fh) if r["type"] == "identity"]


@loader(
    "jigsaw_sentence_templates",
    describe=lambda p: (
        "benchmark: Jigsaw sentence templates (Dixon et al. 2018), "
        + (f"{len(p['identities'])} identities" if p.get("identities") else "every identity")
    ),
)
def jigsaw(root: Path, params: dict[str, Any]) -> list[Row]:
    """Jigsaw identity templates: a cluster is one filled template with every identity term (so
    a drawn cluster gives each identity one item of its label); identities are matched from
    ``words.csv`` (longest term first); rows naming no identity (occupation templates) are left
    out. Strata: label. params: ``identities`` (subset), ``templates`` (subset)."""
    terms = _jigsaw_identities(root)
    want = params.get("identities")
    templates = params.get("templates")
    rx = re.compile(
        r"\b(" + "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)) + r")\b",
        re.I,
    )
    path = root / "jigsaw_sentence_templates" / "en_sentence_templates.csv"
    rows: list[Row] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for i, rec in enumerate(csv.DictReader(fh), 2):
            if templates and rec["template"] not in templates:
                continue
            m = rx.search(rec["phrase"])
            if m is None:
                continue
            ident = m.group(1).lower()
            if want and ident not in want:
                continue
            if rec["toxicity"] not in ("toxic", "nontoxic"):
                raise TaskError(f"{path}:{i}: toxicity must be toxic/nontoxic")
            label = "toxic" if rec["toxicity"] == "toxic" else "not_toxic"
            shape = rec["phrase"][: m.start()] + "{identity}" + rec["phrase"][m.end() :]
            rows.append(
                {
                    "id": f"jigsaw-{i}",
                    "text": rec["phrase"],
                    "identity": ident,
                    "label": label,
                    "group": ident,
                    "stratum": label,
                    "cluster": f"{rec['template']}|{label}|{shape}",
                }
            )
    if want:
        missing = sorted(set(want) - {r["identity"] for r in rows})
        if missing:
            raise TaskError(f"benchmark.params.identities: not in the templates: {missing}")
    # only clusters holding every identity (a complete counterfactual set)
    n_ids = len({r["identity"] for r in rows})
    size: dict[str, int] = {}
    for r in rows:
        size[r["cluster"]] = size.get(r["cluster"], 0) + 1
    return [r for r in rows if size[r["cluster"]] == n_ids]


# ------------------------------------------------------------------------- stereotypes
_CROWS_AXIS = {"race-color": "race_ethnicity", "sexual-orientation": "sexual_orientation"}
_STEREOSET_AXIS = {"race": "race_ethnicity"}


@loader(
    "crows_pairs",
    "stereoset",
    describe=lambda p: (
        "benchmark: "
        + " + ".join(
            {
                "crows_pairs": "CrowS-Pairs (stereo pairs)",
                "stereoset": "StereoSet dev intrasentence",
            }[s]
            for s in p.get("sources", ["crows_pairs", "stereoset"])
        )
    ),
)
def stereotype_pairs(root: Path, params: dict[str, Any]) -> list[Row]:
    """Stereotype / anti-stereotype twins: CrowS-Pairs rows marked ``stereo`` (sent_more is the
    stereotype, sent_less its twin) and StereoSet dev intrasentence clusters (the stereotype and
    anti-stereotype sentence; "unrelated" left out). One cluster per twin pair; strata: source
    x bias type. params: ``sources`` (crows_pairs, stereoset)."""
    rows: list[Row] = []
    sources = params.get("sources", ["crows_pairs", "stereoset"])
    if "crows_pairs" in sources:
        path = root / "crows_pairs" / "crows_pairs_anonymized.csv"
        with path.open(encoding="utf-8", newline="") as fh:
            for rec in csv.DictReader(fh):
                if rec["stereo_antistereo"] != "stereo":
                    continue
                axis = _CROWS_AXIS.get(rec["bias_type"], rec["bias_type"])
                cluster = f"crows-{rec['']}"
                for label, key in (("stereotype", "sent_more"), ("anti_stereotype", "sent_less")):
                    rows.append(_stereo_row(cluster, label, rec[key], axis, "crows"))
    if "stereoset" in sources:
        path = root / "stereoset" / "dev.json"
        data = json.loads(path.read_text(encoding="utf-8"))["data"]["intrasentence"]
        for rec in data:
            by = {s["gold_label"]: s["sentence"] for s in rec["sentences"]}
            if not {"stereotype", "anti-stereotype"} <= set(by):
                continue
            axis = _STEREOSET_AXIS.get(rec["bias_type"], rec["bias_type"])
            cluster = f"stereoset-{rec['id']}"
            rows.append(_stereo_row(cluster, "stereotype", by["stereotype"], axis, "stereoset"))
            rows.append(
                _stereo_row(cluster, "anti_stereotype", by["anti-stereotype"], axis, "stereoset")
            )
    return rows


def _stereo_row(cluster: str, label: str, text: str, axis: str, source: str) -> Row:
    return {
        "id": f"{cluster}-{label}",
        "text": text.strip(),
        "axis": axis,
        "target": axis,
        "term": "",
        "label": label,
        "group": axis,
        "stratum": f"{source}/{axis}",
        "cluster": cluster,
    }


# ------------------------------------------------------------------------- stories
_BOLD_AXIS = {"gender": "gender", "race": "race_ethnicity", "religious_ideology": "religion"}


@loader(
    "bold",
    describe=lambda p: (
        "benchmark: BOLD prompts (" + ", ".join(p.get("domains", list(_BOLD_AXIS))) + ")"
    ),
)
def bold(root: Path, params: dict[str, Any]) -> list[Row]:
    """BOLD prompts (Wikipedia sentence openings about people) of the chosen ``domains``
    (gender, race, religious_ideology by default); group = domain:category (e.g.
    gender:American_actresses). Different people, so no clusters: sampling balances over
    groups (strata) and the gap's CI resamples prompts within groups."""
    rows: list[Row] = []
    for domain in params.get("domains", list(_BOLD_AXIS)):
        path = root / "bold" / "prompts" / f"{domain}_prompt.json"
        if not path.is_file():
            raise TaskError(f"benchmark.params.domains: no BOLD file {path}")
        axis = _BOLD_AXIS.get(domain, domain)
        data = json.loads(path.read_text(encoding="utf-8"))
        for category, people in data.items():
            for person, prompts in people.items():
                for k, text in enumerate(prompts):
                    rows.append(
                        {
                            "id": f"bold-{domain}-{person}-{k}",
                            "text": text.strip(),
                            "subject": person.replace("_", " "),
                            "axis": axis,
                            "label": None,
                            "group": f"{axis}:{category}",
                            "stratum": f"{axis}:{category}",
                        }
                    )
    return rows
