"""Power at 80 %: the smallest effect a replicated design detects, and the design a target needs.

A "smallest detectable change" taken as a CI half-width is detected only half the time. The
convention here is the usual one: the minimum detectable effect (MDE) of a two-sided test at
level ``alpha`` with power ``power`` is

    MDE = (t_{1 − alpha/2, df} + t_{power, df}) × SE

(about 2.8 SE for large df; with few replicates the t quantiles make it larger, e.g. 4.0 SE at
df = 4). It is the standard normal-approximation formula with t quantiles in place of z; the
exact power of a t-test at that effect is within a couple of points of 80 % from df = 4 on
(:func:`power_at` gives the exact, noncentral-t value).

Planning works from pilot variances. A headline is a mean over R replicates of a per-replicate
estimate; with ``between_sd`` the SD of the replicate effect (for an arm comparison, of the
per-replicate *paired difference*) and ``within_sd`` the item-level SD behind an estimate made
on ``items`` items, the headline's standard error is

    SE(R, n) = sqrt(between_sd² / R + within_sd² / (R · n)),

so more items only shrink the second term, and beyond a point only more replicates help.
:func:`between_component` splits a pilot's observed SD of per-replicate estimates into the two
parts. Imports nothing else from the package.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

#: Fewest replicates that give an interval (df = R − 1 ≥ 2).
MIN_REPLICATES = 3


@lru_cache(maxsize=4096)
def t_quantile(q: float, df: float | None = None) -> float:
    """Quantile ``q`` of Student's t on ``df`` degrees of freedom (the normal one for None or
    infinite df). Cached: the studies and the calibration bench ask for the same few often."""
    from scipy import stats as sps

    if df is None or not math.isfinite(df):
        return float(sps.norm.ppf(q))
    return float(sps.t.ppf(q, df))


def mde(
    se: float, alpha: float = 0.05, power: float = 0.8, df: float | None = None
) -> float | None:
    """Minimum detectable effect of a two-sided level-``alpha`` test at ``power``:
    ``(t_{1−alpha/2} + t_{power}) × se`` on ``df`` degrees of freedom (normal when None).
    None when ``se`` is missing or not finite."""
    if se is None or not math.isfinite(se):
        return None
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * float(se)


def power_at(effect: float, se: float, alpha: float = 0.05, df: float | None = None) -> float:
    """Power of the two-sided level-``alpha`` test of zero when the true effect is ``effect`` and
    the estimate's standard error ``se`` (noncentral t on ``df``; normal when None)."""
    from scipy import stats as sps

    if se <= 0:
        return 1.0 if effect != 0 else alpha
    delta = abs(effect) / se
    crit = t_quantile(1 - alpha / 2, df)
    if df is None or not math.isfinite(df):
        return float(sps.norm.sf(crit - delta) + sps.norm.cdf(-crit - delta))
    return float(sps.nct.sf(crit, df, delta) + sps.nct.cdf(-crit, df, delta))


def headline_se(
    replicates: int | np.ndarray,
    between_sd: float,
    within_sd: float = 0.0,
    items: int | np.ndarray | None = None,
) -> np.ndarray | float:
    """SE of a mean over ``replicates`` replicates: ``sqrt(between² / R + within² / (R · n))``.
    With ``items`` None, ``between_sd`` is taken as the full SD of a per-replicate estimate (item
    noise included) and ``within_sd`` is ignored."""
    r = np.asarray(replicates, dtype=float)
    var = np.full_like(r, between_sd**2) / r
    if items is not None and within_sd:
        var = var + within_sd**2 / (r * np.asarray(items, dtype=float))
    return float(np.sqrt(var)) if np.ndim(var) == 0 else np.sqrt(var)


def between_component(estimate_sd: float, within_sd: float, items: int) -> float:
    """The replicate-level SD in a pilot: the observed SD of per-replicate estimates made on
    ``items`` items each, less the item noise ``within_sd² / items`` (0 when that explains all)."""
    return math.sqrt(max(estimate_sd**2 - within_sd**2 / items, 0.0))


@dataclass(frozen=True)
class Plan:
    """A design that detects ``target`` at the stated power: its replicates and items per
    replicate, the headline SE and MDE there, and whether the target is reachable at all."""

    target: float
    replicates: int | None
    items: int | None
    se: float | None
    mde: float | None
    between_sd: float
    within_sd: float
    alpha: float
    power: float
    feasible: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _planner(
    target: float, between_sd: float, within_sd: float, alpha: float, power: float
) -> Callable[..., Plan]:
    """``Plan`` with the fields every plan of one request shares already filled in:
    ``plan(replicates, items, se, mde, feasible, note="")``."""

    def plan(
        replicates: int | None,
        items: int | None,
        se: float | None,
        mde: float | None,
        feasible: bool,
        note: str = "",
    ) -> Plan:
        return Plan(
            target, replicates, items, se, mde, between_sd, within_sd, alpha, power, feasible, note
        )

    return plan


def _mde_curve(se: np.ndarray, df: np.ndarray, alpha: float, power: float) -> np.ndarray:
    from scipy import stats as sps

    return (sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * se


def plan_replicates(
    target: float,
    between_sd: float,
    within_sd: float = 0.0,
    items: int | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    max_replicates: int = 10_000,
) -> Plan:
    """Fewest replicates (at least :data:`MIN_REPLICATES`) whose headline MDE at ``items`` items
    per replicate is at most ``target`` (t on R − 1 df). Infeasible past ``max_replicates``."""
    target = abs(target)
    plan = _planner(target, between_sd, within_sd, alpha, power)
    r = np.arange(MIN_REPLICATES, max_replicates + 1)
    se = np.asarray(headline_se(r, between_sd, within_sd, items), dtype=float)
    curve = _mde_curve(se, r - 1.0, alpha, power)
    ok = np.flatnonzero(curve <= target)
    if len(ok) == 0:
        return plan(None, items, None, None, False, f"more than {max_replicates} replicates needed")
    k = int(ok[0])
    return plan(int(r[k]), items, float(se[k]), float(curve[k]), True)


def plan_items(
    target: float,
    between_sd: float,
    within_sd: float,
    replicates: int,
    alpha: float = 0.05,
    power: float = 0.8,
    max_items: int = 1_000_000,
) -> Plan:
    """Fewest items per replicate that bring the MDE of ``replicates`` replicates to ``target``;
    infeasible (with the floor in the note) when the replicate part alone exceeds it."""
    target = abs(target)
    plan = _planner(target, between_sd, within_sd, alpha, power)
    if replicates < MIN_REPLICATES:
        msg = f"fewer than {MIN_REPLICATES} replicates give no interval"
        return plan(replicates, None, None, None, False, msg)
    df = replicates - 1
    factor = t_quantile(1 - alpha / 2, df) + t_quantile(power, df)
    floor = factor * between_sd / math.sqrt(replicates)
    if floor >= target:
        note = (
            f"the replicate part alone gives MDE {floor:.4g} at R = {replicates}: "
            "add replicates, not items"
        )
        return plan(replicates, None, None, floor, False, note)
    # SE² = b²/R + w²/(R n) ≤ (target / factor)²  ⇔  n ≥ w² / (R (target/factor)² − b²)
    need = within_sd**2 / (replicates * (target / factor) ** 2 - between_sd**2)
    n = max(1, math.ceil(need - 1e-9))
    if n > max_items:
        msg = f"more than {max_items} items per replicate needed"
        return plan(replicates, None, None, None, False, msg)
    se = float(headline_se(replicates, between_sd, within_sd, n))
    return plan(replicates, n, se, factor * se, True)
