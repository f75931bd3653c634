"""WEAT and SEAT: association tests between target and attribute word sets in an embedding space.

WEAT (Caliskan, Bryson & Narayanan, 2017, *Science*) asks whether target words X (e.g. flowers)
sit closer to attribute words A (pleasant) than targets Y (insects) do, relative to attributes B
(unpleasant). With cosine similarity ``cos``::

    s(w, A, B) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b)
    d = (mean_{x in X} s(x, A, B) - mean_{y in Y} s(y, A, B)) / std_{w in X ∪ Y} s(w, A, B)

The standard deviation is over all target words, as in Caliskan et al.; we use the *sample* std
(``ddof=1``) by default (``ddof=0`` gives the population form some reimplementations use). The
p-value is the one-sided permutation test over re-partitions of X ∪ Y into sets of sizes |X| and
|Y|: exact (every partition) when there are at most ``exact_max`` of them, otherwise
``n_permutations`` seeded random ones. The test statistic is the difference of mean
associations, which for |X| = |Y| orders partitions exactly as Caliskan's difference of sums.

SEAT (May et al., 2019) runs the same test on a *sentence* encoder by inserting each word into
semantically bleached templates ("This is {w}.", "{w} is here."); the default templates live in
``lexicon/data/weat/seat_templates.yaml``. Everything here works on any embedding function
``texts -> (n, dim) array`` or any object with such an ``encode`` method (e.g.
:class:`synthbias.measure.embedding.Encoder`), so word-level WEAT with a sentence encoder is just
:func:`weat` without templates.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import yaml

from synthbias.core.yaml import load_strict, yaml_error_message
from synthbias.measure.embedding import Encoder
from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import (
    multinomial_weights,
    percentile_ci,
    two_sample_indices,
)
from synthbias.stats.resampling import all_subsets, permutation_p_value, random_subsets

WEAT_DATA_DIR = Path(__file__).resolve().parent.parent / "lexicon" / "data" / "weat"
DEFAULT_SEAT_TEMPLATES_PATH = WEAT_DATA_DIR / "seat_templates.yaml"
PLACEHOLDER = "{w}"

Alternative = Literal["greater", "less", "two-sided"]
Aggregate = Literal["mean", "none"]


def _strict_yaml(text: str, path: Path | str) -> Any:
    """A user's YAML word-set or template file; errors name the file and line."""
    try:
        return load_strict(text)
    except yaml.YAMLError as exc:
        raise ValueError(yaml_error_message(path, exc)) from exc


def _caliskan_tests() -> dict[str, tuple[str, str, str, str]]:
    """Caliskan et al. (2017) tests 1-10 as (X, Y, A, B) set names of WEFE's WEAT.json
    (the table is data: ``lexicon/data/weat/caliskan_tests.yaml``)."""
    raw = yaml.safe_load((WEAT_DATA_DIR / "caliskan_tests.yaml").read_text(encoding="utf-8"))
    return {name: tuple(sets) for name, sets in raw.items()}  # type: ignore[misc]


CALISKAN_TESTS: dict[str, tuple[str, str, str, str]] = _caliskan_tests()


class SupportsEncode(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


EmbedFn = Callable[[Sequence[str]], np.ndarray]
EncoderLike = SupportsEncode | EmbedFn


def as_embed_fn(encoder: EncoderLike | None) -> tuple[EmbedFn, str]:
    """An embedding function and a model label from an encoder, a callable or ``None``.

    ``None`` builds the default offline :class:`~synthbias.measure.embedding.Encoder` (imported
    lazily so that the maths here never needs torch).
    """
    if encoder is None:
        encoder = Encoder()
    fn = getattr(encoder, "encode", None)
    if callable(fn):
        return fn, str(getattr(encoder, "model_id", type(encoder).__name__))
    if callable(encoder):
        return encoder, str(getattr(encoder, "__name__", type(encoder).__name__))
    raise TypeError("encoder must have an encode(texts) method or be a callable texts -> vectors")


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def load_word_sets(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read ``{set_name: [word, ...]}`` from a JSON or YAML file (e.g. WEFE's ``WEAT.json``)."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = _strict_yaml(f.read(), path)
        else:
            data = json.load(f)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: want a mapping of set name -> list of words")
    out: dict[str, list[str]] = {}
    for name, words in data.items():
        if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words):
            raise ValueError(f"{path}: set {name!r} must be a list of non-empty strings")
        out[str(name)] = list(words)
    return out


def load_seat_templates(path: str | os.PathLike[str] | None = None) -> list[str]:
    """SEAT templates from a YAML file with a ``templates`` list (default: the packaged set)."""

    p = Path(path) if path is not None else DEFAULT_SEAT_TEMPLATES_PATH
    with open(p, encoding="utf-8") as f:
        data = _strict_yaml(f.read(), p)
    templates = data.get("templates") if isinstance(data, Mapping) else data
    return _check_templates(templates, str(p))


def _check_templates(templates: Any, where: str = "templates") -> list[str]:
    if isinstance(templates, str) or not isinstance(templates, Sequence) or not templates:
        raise ValueError(f"{where}: want a non-empty list of template strings")
    out = []
    for t in templates:
        if not isinstance(t, str) or PLACEHOLDER not in t:
            raise ValueError(f"{where}: template {t!r} must be a string containing {PLACEHOLDER}")
        out.append(t)
    return out


def fill_template(template: str, word: str) -> str:
    """Insert ``word`` at ``{w}``; a sentence-initial word gets a capital first letter."""
    if template.startswith(PLACEHOLDER) and word:
        word = word[0].upper() + word[1:]
    return template.replace(PLACEHOLDER, word)


@dataclass(frozen=True)
class WeatTest:
    """Targets X, Y and attributes A, B, with display names."""

    x: tuple[str, ...]
    y: tuple[str, ...]
    a: tuple[str, ...]
    b: tuple[str, ...]
    x_name: str = "X"
    y_name: str = "Y"
    a_name: str = "A"
    b_name: str = "B"

    @classmethod
    def from_sets(
        cls, sets: Mapping[str, Sequence[str]], x: str, y: str, a: str, b: str
    ) -> WeatTest:
        """Build a test from named word sets (e.g. :func:`load_word_sets` of ``WEAT.json``)."""
        missing = [k for k in (x, y, a, b) if k not in sets]
        if missing:
            raise KeyError(f"word sets {missing} not found; have {sorted(sets)}")
        return cls(tuple(sets[x]), tuple(sets[y]), tuple(sets[a]), tuple(sets[b]), x, y, a, b)


# ---------------------------------------------------------------------------------------------
# Maths on vectors
# ---------------------------------------------------------------------------------------------


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"want a 2-D (n, dim) array, got shape {x.shape}")
    n = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(n == 0):
        raise ValueError("zero vector: cosine similarity is undefined")
    return x / n


def association(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s(w, A, B) = mean cos(w, a) - mean cos(w, b) for each row ``w``."""
    wu, au, bu = _unit_rows(w), _unit_rows(a), _unit_rows(b)
    return (wu @ au.T).mean(axis=1) - (wu @ bu.T).mean(axis=1)


def weat_effect_size(s_x: Sequence[float], s_y: Sequence[float], ddof: int = 1) -> float:
    """Caliskan's d from per-word associations; std over X ∪ Y with ``ddof`` (NaN if zero)."""
    sx, sy = np.asarray(s_x, dtype=float), np.asarray(s_y, dtype=float)
    if len(sx) < 1 or len(sy) < 1 or len(sx) + len(sy) <= ddof:
        return math.nan
    std = float(np.std(np.concatenate([sx, sy]), ddof=ddof))
    if not std > 0:
        return math.nan
    return float((sx.mean() - sy.mean()) / std)


def _n_partitions(nx: int, ny: int) -> int:
    return math.comb(nx + ny, nx)


def weat_permutation_pvalue(
    s_x: Sequence[float],
    s_y: Sequence[float],
    n_permutations: int = 10_000,
    exact_max: int = 100_000,
    seed: int = 0,
    alternative: Alternative = "greater",
) -> tuple[float, int, bool]:
    """Permutation p-value of mean(s_X) - mean(s_Y); returns (p, partitions used, exact).

    Exact: the share of all C(|X|+|Y|, |X|) re-partitions whose statistic is at least the
    observed one (the observed partition included, so p >= 1/C; Caliskan et al. write a strict
    ">", which differs by that 1/C). Sampled: (1 + hits) / (1 + n_permutations), the standard
    unbiased form for random permutations (Phipson & Smyth, 2010). ``"two-sided"`` compares
    absolute values. Ties within 1e-12 (relative) count as hits, so float noise in sums of
    equal values cannot flip them.
    """
    sx, sy = np.asarray(s_x, dtype=float), np.asarray(s_y, dtype=float)
    nx, ny = len(sx), len(sy)
    if nx < 1 or ny < 1:
        raise ValueError("both target sets need at least one word")
    s = np.concatenate([sx, sy])
    total = float(s.sum())
    observed = float(sx.mean() - sy.mean())
    tol = 1e-12 * max(1.0, float(np.abs(s).sum()))

    def stats(subset_sums: np.ndarray) -> np.ndarray:
        return subset_sums / nx - (total - subset_sums) / ny

    def hits(st: np.ndarray) -> int:
        if alternative == "greater":
            return int(np.count_nonzero(st >= observed - tol))
        if alternative == "less":
            return int(np.count_nonzero(st <= observed + tol))
        if alternative == "two-sided":
            return int(np.count_nonzero(np.abs(st) >= abs(observed) - tol))
        raise ValueError(f"unknown alternative {alternative!r}")

    n_all = _n_partitions(nx, ny)
    n = nx + ny
    if n_all <= exact_max:
        count = sum(hits(stats(s[sub].sum(axis=1))) for sub in all_subsets(n, nx))
        return count / n_all, n_all, True
    if n_permutations < 1:
        raise ValueError("n_permutations must be >= 1")
    rng = np.random.default_rng(seed)
    subsets = random_subsets(n, nx, n_permutations, rng)
    count = sum(hits(stats(s[sub].sum(axis=1))) for sub in subsets)
    return permutation_p_value(count, n_permutations), n_permutations, False


def _bootstrap_effect_sizes(
    s_x: np.ndarray,
    s_y: np.ndarray,
    n_resamples: int,
    ddof: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """d for resamples of X and Y drawn with replacement separately (a stratified bootstrap).

    ``s_x``/``s_y`` are 1-D (fixed associations) or 2-D (one row of associations per resample,
    when the attribute sets are resampled too).
    """
    ix, iy = two_sample_indices(s_x.shape[-1], s_y.shape[-1], n_resamples, rng)
    if s_x.ndim == 1:
        bx, by = s_x[ix], s_y[iy]
    else:
        bx = np.take_along_axis(s_x, ix, axis=1)
        by = np.take_along_axis(s_y, iy, axis=1)
    std = np.std(np.concatenate([bx, by], axis=1), axis=1, ddof=ddof)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = (bx.mean(axis=1) - by.mean(axis=1)) / std
    return np.where(std > 0, d, np.nan)


def weat_from_embeddings(
    x: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    names: tuple[str, str, str, str] = ("X", "Y", "A", "B"),
    ddof: int = 1,
    n_permutations: int = 10_000,
    exact_max: int = 100_000,
    alternative: Alternative = "greater",
    n_resamples: int = 1000,
    resample_attributes: bool = False,
    level: float = 0.95,
    seed: int = 0,
    name: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> MetricResult:
    """WEAT on given vectors (rows = words or sentences): effect size, p-value and bootstrap CI.

    ``value`` is d; ``per_sample`` the associations s(w, A, B) of the X rows then the Y rows
    (``meta["targets"]`` names them, ``meta["target_set"]`` says which set each is from);
    ``per_group`` the mean association of each target set. The CI is a percentile bootstrap
    over target words, resampling X and Y separately with the attribute sets fixed (set
    ``resample_attributes`` to resample A and B too, which widens it by the attribute-choice
    uncertainty). Caveat: the p-value and the CI treat target words as exchangeable draws, which
    hand-picked stimulus lists are not; read them as sensitivity to the word choice.
    """
    xu, yu, au, bu = (_unit_rows(v) for v in (x, y, a, b))
    nx, ny = len(xu), len(yu)
    if nx < 1 or ny < 1 or len(au) < 1 or len(bu) < 1:
        raise ValueError("every set needs at least one vector")
    if nx + ny <= ddof + 1:
        raise ValueError("need more than ddof + 1 target words in total for a spread")
    targets = np.concatenate([xu, yu])
    cos_a, cos_b = targets @ au.T, targets @ bu.T
    s = cos_a.mean(axis=1) - cos_b.mean(axis=1)
    s_x, s_y = s[:nx], s[nx:]
    d = weat_effect_size(s_x, s_y, ddof=ddof)
    p, n_perm, exact = weat_permutation_pvalue(
        s_x,
        s_y,
        n_permutations=n_permutations,
        exact_max=exact_max,
        seed=seed,
        alternative=alternative,
    )

    rng = np.random.default_rng(seed)
    if resample_attributes:
        wa = multinomial_weights(len(au), n_resamples, rng)
        wb = multinomial_weights(len(bu), n_resamples, rng)
        s_boot = wa @ cos_a.T - wb @ cos_b.T  # (n_resamples, nx + ny)
        boot = _bootstrap_effect_sizes(s_boot[:, :nx], s_boot[:, nx:], n_resamples, ddof, rng)
    else:
        boot = _bootstrap_effect_sizes(s_x, s_y, n_resamples, ddof, rng)
    ci = percentile_ci(boot, level)

    xn, yn, an, bn = names
    xl = list(x_labels) if x_labels is not None else [f"{xn}[{i}]" for i in range(nx)]
    yl = list(y_labels) if y_labels is not None else [f"{yn}[{i}]" for i in range(ny)]
    if len(xl) != nx or len(yl) != ny:
        raise ValueError("x_labels / y_labels must match the number of X / Y rows")
    out_meta: dict[str, Any] = {
        "p_value": p,
        "alternative": alternative,
        "n_permutations": n_perm,
        "exact": exact,
        "ddof": ddof,
        "std": float(np.std(s, ddof=ddof)),
        "mean_difference": float(s_x.mean() - s_y.mean()),
        "sets": {"X": xn, "Y": yn, "A": an, "B": bn},
        "sizes": {"X": nx, "Y": ny, "A": len(au), "B": len(bu)},
        "targets": xl + yl,
        "target_set": [xn] * nx + [yn] * ny,
        "ci_method": "percentile bootstrap over target words (X, Y resampled separately)"
        + (" and attribute words" if resample_attributes else ", attributes fixed"),
        "n_resamples": n_resamples,
        "seed": seed,
    }
    out_meta.update(meta or {})
    return MetricResult(
        name=name or f"weat.{xn}_vs_{yn}.{an}_vs_{bn}",
        value=d,
        ci=ci,
        per_group={xn: float(s_x.mean()), yn: float(s_y.mean())},
        per_sample=[float(v) for v in s],
        n=nx + ny,
        meta=out_meta,
    )


# ---------------------------------------------------------------------------------------------
# Word-level WEAT and SEAT with an encoder
# ---------------------------------------------------------------------------------------------


def _words(words: Sequence[str], which: str) -> list[str]:
    if isinstance(words, str):
        raise TypeError(f"{which} must be a list of words, not a string")
    out = list(words)
    if not out or not all(isinstance(w, str) and w.strip() for w in out):
        raise ValueError(f"{which} must be a non-empty list of non-empty strings")
    return out


def weat(
    x: Sequence[str] | WeatTest,
    y: Sequence[str] | None = None,
    a: Sequence[str] | None = None,
    b: Sequence[str] | None = None,
    encoder: EncoderLike | None = None,
    *,
    names: tuple[str, str, str, str] | None = None,
    templates: Sequence[str] | None = None,
    aggregate: Aggregate = "mean",
    ddof: int = 1,
    n_permutations: int = 10_000,
    exact_max: int = 100_000,
    alternative: Alternative = "greater",
    n_resamples: int = 1000,
    resample_attributes: bool = False,
    seed: int = 0,
    name: str | None = None,
) -> MetricResult:
    """WEAT of word sets under ``encoder`` (default: the bundled all-MiniLM-L6-v2).

    Pass the four word lists, or one :class:`WeatTest`. Without ``templates`` each word is
    embedded bare (word-level WEAT). With ``templates`` (strings containing ``{w}``) this is SEAT:
    ``aggregate="mean"`` averages each word's unit template embeddings into one vector, so the
    test units stay the words (exchangeable in the permutation test, and the bootstrap resamples
    words); ``aggregate="none"`` makes every sentence a unit, as in May et al. (2019), which
    treats the sentences of one word as independent and so overstates significance.
    """
    if isinstance(x, WeatTest):
        test = x
        if names is None:
            names = (test.x_name, test.y_name, test.a_name, test.b_name)
    else:
        if y is None or a is None or b is None:
            raise TypeError("give x, y, a, b word lists, or one WeatTest")
        sets4 = [_words(ws, n) for ws, n in zip((x, y, a, b), "XYAB", strict=True)]
        test = WeatTest(*(tuple(ws) for ws in sets4))
    names = names or ("X", "Y", "A", "B")
    sets = [_words(ws, n) for ws, n in zip((test.x, test.y, test.a, test.b), names, strict=True)]
    embed, model_id = as_embed_fn(encoder)
    tmpl = _check_templates(list(templates)) if templates is not None else None
    if aggregate not in ("mean", "none"):
        raise ValueError(f"unknown aggregate {aggregate!r} (use 'mean' or 'none')")

    if tmpl is None:
        uniq = list(dict.fromkeys(w for ws in sets for w in ws))
        vec = dict(zip(uniq, _unit_rows(embed(uniq)), strict=True))
        mats = [np.stack([vec[w] for w in ws]) for ws in sets]
        labels = [sets[0], sets[1]]
        units = "words"
    else:
        sentences = list(
            dict.fromkeys(fill_template(t, w) for ws in sets for w in ws for t in tmpl)
        )
        vec = dict(zip(sentences, _unit_rows(embed(sentences)), strict=True))

        def per_word(w: str) -> np.ndarray:
            return np.stack([vec[fill_template(t, w)] for t in tmpl])

        if aggregate == "mean":
            mats = [np.stack([per_word(w).mean(axis=0) for w in ws]) for ws in sets]
            labels = [sets[0], sets[1]]
            units = "words (mean of template embeddings)"
        else:
            mats = [np.concatenate([per_word(w) for w in ws]) for ws in sets]
            labels = [[fill_template(t, w) for w in ws for t in tmpl] for ws in sets[:2]]
            units = "sentences"
    meta = {
        "model_id": model_id,
        "method": "SEAT" if tmpl is not None else "WEAT",
        "templates": tmpl,
        "aggregate": aggregate if tmpl is not None else None,
        "units": units,
    }
    return weat_from_embeddings(
        *mats,
        x_labels=labels[0],
        y_labels=labels[1],
        names=names,
        ddof=ddof,
        n_permutations=n_permutations,
        exact_max=exact_max,
        alternative=alternative,
        n_resamples=n_resamples,
        resample_attributes=resample_attributes,
        seed=seed,
        name=name,
        meta=meta,
    )


def seat(
    x: Sequence[str] | WeatTest,
    y: Sequence[str] | None = None,
    a: Sequence[str] | None = None,
    b: Sequence[str] | None = None,
    encoder: EncoderLike | None = None,
    *,
    templates: Sequence[str] | None = None,
    **kwargs: Any,
) -> MetricResult:
    """SEAT: :func:`weat` with words inserted into bleached templates (packaged set by default)."""
    tmpl = list(templates) if templates is not None else load_seat_templates()
    res = weat(x, y, a, b, encoder, templates=tmpl, **kwargs)
    if kwargs.get("name") is None:
        res.name = "seat" + res.name.removeprefix("weat")
    return res
