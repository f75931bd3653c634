"""Inference at the level of the claim: a headline is a mean over independent replicates.

A study's claims are about random processes (generating a corpus, drawing a mix, training an
adapter), so the unit of inference is the *replicate*: an independent draw of everything random
behind a claim. Each replicate gives one estimate (its own item-level CI is a secondary figure);
the headline is their mean, and its interval comes from the variation *between* replicates, which
already contains the item noise of each.

* ``method="t"`` (default): mean ± t_{R−1} · s / √R over the per-replicate estimates. Exact for
  normal replicate effects and robust to moderate skew; the calibration bench
  (``bench/calibration.py``) checks its coverage for every study's headline.
* ``method="two_stage"``: a two-stage bootstrap — draw R replicates with replacement, then the
  items within each drawn replicate, and recompute the statistic — for per-replicate statistics
  that are not item means (ratios, AUCs). Its raw variance counts item noise twice (it is in the
  spread of the replicates already) and shrinks the replicate part by (R − 1)/R, so percentile
  intervals at small R miss badly (about 85 % at R = 5) or over-cover when items dominate. The
  interval therefore uses the two-stage SE with the item stage's second count removed and the
  (R − 1)/R undone (Davison & Hinkley 1997, §3.8), on t_{R−1}.

**Paired arms.** Replicate *i* of every arm shares its seeds, so an arm is compared with its
baseline through the per-replicate differences (arm − baseline within replicate *i*):
:func:`paired_difference`, :func:`paired_arms`. Dose-response slopes and factorial effects are
per-replicate estimates too (:func:`replicate_slopes`, :func:`factorial_effects`), so their
intervals also rest on between-replicate variation (the replicate × treatment interaction is the
error term, as in a randomised block design).

Below :data:`MIN_REPLICATES` replicates there is no interval: the result carries the mean with
``status="not replicated"`` and None for the interval, SE, p-value and MDE. Every result carries
the 80 %-power MDE from its SE (:mod:`synthbias.stats.power`) and a two-sided p-value for use
with :mod:`synthbias.stats.multiplicity`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from synthbias.stats.chains import text_draws
from synthbias.stats.power import MIN_REPLICATES, mde, t_quantile

Method = Literal["t", "two_stage"]
#: A statistic of resampled items: an (m, n_items, ...) array -> m values.
ItemStat = Callable[[np.ndarray], np.ndarray]

REPLICATED = "replicated"
NOT_REPLICATED = "not replicated"


@dataclass(frozen=True)
class ReplicateResult:
    """A headline over replicates: the mean, its interval and SE from between-replicate
    variation, the t df, the two-sided p-value against ``null``, the 80 %-power MDE and the
    per-replicate estimates. ``status`` is ``"replicated"`` or ``"not replicated"`` (fewer than
    3 usable replicates: no interval, and None in every inferential field)."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    se: float | None
    df: int | None
    n_replicates: int
    method: str
    status: str
    mde_80: float | None
    p_value: float | None = None
    level: float = 0.95
    null: float = 0.0
    per_replicate: tuple[float, ...] = ()

    @property
    def replicated(self) -> bool:
        return self.status == REPLICATED

    def covers(self, value: float) -> bool:
        """Whether the interval contains ``value`` (False without an interval)."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low <= value <= self.ci_high

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_replicate"] = [_clean(v) for v in self.per_replicate]
        return {k: _clean(v) if isinstance(v, float) else v for k, v in d.items()}


def _clean(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def mean_statistic(x: np.ndarray) -> np.ndarray:
    """Mean over items (axis 1) of resampled item values: the default per-replicate statistic."""
    return x.mean(axis=1)


def paired_mean_difference(x: np.ndarray) -> np.ndarray:
    """For items stored as (arm, baseline) columns, mean(arm) − mean(baseline) per resample."""
    return x[..., 0].mean(axis=1) - x[..., 1].mean(axis=1)


# --------------------------------------------------------------------------- one headline


def replicate_estimate(
    values: Sequence[float] | np.ndarray | None = None,
    *,
    method: Method = "t",
    items: Sequence[np.ndarray] | None = None,
    statistic: ItemStat = mean_statistic,
    level: float = 0.95,
    null: float = 0.0,
    n_resamples: int = 2000,
    seed: int = 0,
) -> ReplicateResult:
    """Headline over replicates: the mean of per-replicate estimates with its interval.

    ``values`` are the per-replicate estimates (non-finite ones, failed replicates, are left out).
    ``items[i]`` holds replicate *i*'s item values (rows are items); without ``values`` the
    estimates are ``statistic`` of each replicate's items. ``method="two_stage"`` needs ``items``
    (see the module docstring); ``seed`` and ``n_resamples`` only matter for it.
    """
    if method not in ("t", "two_stage"):
        raise ValueError(f"unknown method {method!r}; use 't' or 'two_stage'")
    arrays = [np.asarray(x, dtype=float) for x in items] if items is not None else None
    if values is None:
        if arrays is None:
            raise ValueError("give per-replicate values or per-replicate items")
        values = [_point(x, statistic) for x in arrays]
    est = np.asarray(values, dtype=float)
    keep = np.isfinite(est)
    if arrays is not None and len(arrays) != len(est):
        raise ValueError("values and items must have one entry per replicate")
    if method == "two_stage" and arrays is None:
        raise ValueError("the two-stage bootstrap needs per-replicate items")
    label = "t over replicates" if method == "t" else "two-stage bootstrap SE, t over replicates"
    r = int(keep.sum())
    point = float(est[keep].mean()) if r else None
    if r < MIN_REPLICATES:
        return not_replicated(point, r, label, level, null, est.tolist())
    if method == "t":
        se = float(est[keep].std(ddof=1) / math.sqrt(r))
    else:
        kept = [x for x, k in zip(arrays, keep, strict=True) if k]  # type: ignore[arg-type]
        se = two_stage_se(kept, est[keep], statistic, n_resamples, np.random.default_rng(seed))
    return t_result(point, se, r - 1, r, label, level, null, est.tolist())  # type: ignore[arg-type]


def _point(x: np.ndarray, statistic: ItemStat) -> float:
    return float(statistic(x[None])[0]) if len(x) else math.nan


def not_replicated(
    point: float | None,
    n_replicates: int,
    method: str,
    level: float = 0.95,
    null: float = 0.0,
    per_replicate: Sequence[float] = (),
) -> ReplicateResult:
    """A headline with too few replicates: the point value only, labelled so."""
    return ReplicateResult(
        estimate=point,
        ci_low=None,
        ci_high=None,
        se=None,
        df=None,
        n_replicates=n_replicates,
        method=method,
        status=NOT_REPLICATED,
        mde_80=None,
        level=level,
        null=null,
        per_replicate=tuple(float(v) for v in per_replicate),
    )


def t_result(
    point: float,
    se: float,
    df: int,
    n_replicates: int,
    method: str,
    level: float = 0.95,
    null: float = 0.0,
    per_replicate: Sequence[float] = (),
) -> ReplicateResult:
    """A replicated headline from its estimate, SE and df: the t-interval, the two-sided
    t-test p-value against ``null`` and the 80 %-power MDE (also used for the map's slope)."""
    from scipy import stats as sps

    half = t_quantile(1 - (1 - level) / 2, df) * se
    if se > 0:
        p = float(2 * sps.t.sf(abs(point - null) / se, df))
    else:
        p = 0.0 if point != null else 1.0
    return ReplicateResult(
        estimate=point,
        ci_low=point - half,
        ci_high=point + half,
        se=se,
        df=df,
        n_replicates=n_replicates,
        method=method,
        status=REPLICATED,
        mde_80=mde(se, df=df),
        p_value=p,
        level=level,
        null=null,
        per_replicate=tuple(float(v) for v in per_replicate),
    )


def two_stage_se(
    items: Sequence[np.ndarray],
    estimates: np.ndarray,
    statistic: ItemStat,
    n_resamples: int,
    rng: np.random.Generator,
) -> float:
    """SE of the mean over replicates from a two-stage bootstrap (replicates, then items within
    each drawn replicate), corrected for its two known biases at small R.

    With V* the variance of the two-stage means and W̄ the mean within-replicate bootstrap
    variance of the statistic, E[V*] ≈ ((R−1)/R · S² + W̄) / R for S² the variance of the
    per-replicate estimates; the SE returned is sqrt(R/(R−1) · (V* − W̄/R)), and the plain
    between-replicate SE when noise makes that negative.
    """
    r = len(items)
    picks = rng.integers(0, r, size=(n_resamples, r))
    boot = np.empty((n_resamples, r))
    within = np.empty(r)
    for i, x in enumerate(items):
        rows, slots = np.nonzero(picks == i)
        draws = text_draws(x, statistic, max(len(rows), 2), rng)
        boot[rows, slots] = draws[: len(rows)]
        within[i] = draws.var(ddof=1)
    v_star = boot.mean(axis=1).var(ddof=1)
    var = r / (r - 1) * (v_star - within.mean() / r)
    if not var > 0:
        var = float(estimates.var(ddof=1) / r)
    return float(math.sqrt(var))


def bootstrap_p_value(draws: Sequence[float] | np.ndarray, null: float = 0.0) -> float | None:
    """Two-sided bootstrap p-value of ``null``: twice the smaller tail share of the draws on
    either side of it, with the (1 + count) / (1 + B) correction; None without finite draws."""
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return None
    tail = min((d <= null).sum(), (d >= null).sum())
    return float(min(1.0, 2 * (1 + tail) / (1 + len(d))))


# --------------------------------------------------------------------------- paired arms


def paired_difference(
    arm: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    level: float = 0.95,
    null: float = 0.0,
) -> ReplicateResult:
    """Arm − baseline from per-replicate paired differences (replicate *i* of both arms shares
    its seeds); a replicate missing in either arm is left out."""
    a, b = np.asarray(arm, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError("arm and baseline need one value per replicate, in the same order")
    return replicate_estimate(a - b, level=level, null=null)


def paired_arms(
    values: np.ndarray | Sequence[Sequence[float]],
    arms: Sequence[str],
    baseline: str,
    level: float = 0.95,
) -> dict[str, ReplicateResult]:
    """Every arm against ``baseline`` from an (R replicates × arms) table of estimates."""
    table = np.asarray(values, dtype=float)
    if table.ndim != 2 or table.shape[1] != len(arms):
        raise ValueError("values must be (replicates, arms) with one column per arm")
    j = list(arms).index(baseline)
    return {
        name: paired_difference(table[:, k], table[:, j], level)
        for k, name in enumerate(arms)
        if k != j
    }


def paired_items(arm: Sequence[np.ndarray], baseline: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per replicate, the arm's and the baseline's values on the same items as (items, 2)
    columns, for :func:`replicate_estimate` with ``statistic=paired_mean_difference``."""
    return [
        np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
        for x, y in zip(arm, baseline, strict=True)
    ]


# --------------------------------------------------------------------------- slopes and effects


def replicate_slopes(
    x: Sequence[float] | np.ndarray, values: np.ndarray | Sequence[Sequence[float]]
) -> np.ndarray:
    """Least-squares slope of each replicate's values on ``x`` (e.g. the augmentation ratio):
    ``values`` is (R, len(x)); non-finite points are left out, and a replicate with fewer than
    two distinct x left gets NaN."""
    xs = np.asarray(x, dtype=float)
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(y) & np.isfinite(xs)[None, :]
    w = ok.astype(float)
    n = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (w * xs).sum(axis=1) / n
        my = np.where(ok, y, 0.0).sum(axis=1) / n
        dx = np.where(ok, xs[None, :] - mx[:, None], 0.0)
        sxx = (dx**2).sum(axis=1)
        sxy = (dx * np.where(ok, y - my[:, None], 0.0)).sum(axis=1)
        return np.where(sxx > 0, sxy / sxx, np.nan)


def slope_over_replicates(
    x: Sequence[float] | np.ndarray,
    values: np.ndarray | Sequence[Sequence[float]],
    level: float = 0.95,
) -> ReplicateResult:
    """Dose-response slope: the mean of the per-replicate slopes, t over replicates."""
    return replicate_estimate(replicate_slopes(x, values), level=level)


def factorial_effects(
    design: np.ndarray | Sequence[Sequence[float]],
    values: np.ndarray | Sequence[Sequence[float]],
    interactions: bool = False,
) -> np.ndarray:
    """Per-replicate main effects of a two-level factorial design, by least squares.

    ``design`` is (cells, factors) with two levels per factor (0/1 or −1/+1; coded ±1 here);
    ``values`` is (R, cells). The effect of a factor is high − low (twice its ±1 coefficient),
    i.e. in a balanced design mean(high cells) − mean(low cells). ``interactions`` adds every
    two-factor product to the model (main effects unchanged in a balanced design). Returns
    (R, factors); a replicate with a missing cell gets NaN.
    """
    d = np.asarray(design, dtype=float)
    lo, hi = d.min(axis=0), d.max(axis=0)
    if np.any(hi == lo):
        raise ValueError("every factor needs two levels in the design")
    coded = 2 * (d - lo) / (hi - lo) - 1
    cols = [np.ones(len(d)), *coded.T]
    if interactions:
        f = coded.shape[1]
        cols += [coded[:, i] * coded[:, j] for i in range(f) for j in range(i + 1, f)]
    x = np.column_stack(cols)
    y = np.atleast_2d(np.asarray(values, dtype=float))
    beta = np.linalg.lstsq(x, np.nan_to_num(y.T), rcond=None)[0]  # (params, R)
    effects = 2 * beta[1 : 1 + coded.shape[1]].T
    effects[~np.isfinite(y).all(axis=1)] = np.nan
    return effects


def factorial_effect(
    design: np.ndarray | Sequence[Sequence[float]],
    values: np.ndarray | Sequence[Sequence[float]],
    factor: int,
    level: float = 0.95,
    interactions: bool = False,
) -> ReplicateResult:
    """Main effect of ``factor`` (a column of ``design``) with its interval from the
    between-replicate variation of the per-replicate effects (see :func:`factorial_effects`)."""
    effects = factorial_effects(design, values, interactions)[:, factor]
    return replicate_estimate(effects, level=level)
