"""Decide under a forecast's uncertainty: learned bias and error by lead, blending, a premium on waiting.

Why this module exists: the planner picks the cheapest window of whatever series it is given, so
a forecast that is biased at some leads, or merely noisy far ahead, makes it move work for gains
that are not there (with persistence, a flat forecast, it moved work at random and did worse than
not shifting). This module turns a raw forecast into the series the planner should minimise:

1. errors by lead (``learn_lead_errors``): the signal's own recent history says how far off past
   forecasts of this source were at each lead: mean error (bias) and spread (sigma);
2. ``condition``: the bias is subtracted; a second forecast (the built-in one, from the signal's
   history) is blended in with inverse-variance weights per lead, and it fills leads the first
   one does not reach; then every lead ``h`` gets a premium ``premium x (sigma_h - sigma_0)``,
   so waiting for a window must gain more than the extra uncertainty of that window compared
   with running now. With a flat forecast (no information) nothing is moved. For a job with a
   preferred start (``Job.preferred_start``, e.g. a nightly job at 01:00 submitted in the
   evening) "not moving" is starting there: the premium pivots around that lead instead of 0
   (``pivot``), so moving away from it must beat the extra uncertainty of the slot moved to.
3. ``relative_spread`` (optional, ``LeadErrors.relative``): the spread of the error of the *gain*
   of moving from the pivot to lead ``h``, std(e_h - e_pivot), which is at least |sigma_h - sigma_0|;
   with it the premium is ``premium x`` that spread. Measured on Sep-Oct 2021 of DE and SE it lost
   much of DACF's nightly saving (it blocks moves that pay on average, and re-planning around "now"
   loads a decided later slot with the spread of the slot it would run in now), so the simulator's
   ``learned`` policy and the operator do not use it; the simulator's ``learned-relative`` does
   (docs/benchmarks.md, "Savings under real forecasts").

Pure numpy, no clock: the caller passes past forecasts and the actuals they were issued for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DEFAULT_PREMIUM = 0.5  # how many extra error standard deviations a later window must beat


@dataclass(frozen=True)
class LeadErrors:
    """Per lead (slots ahead of issue): mean forecast - actual, and its standard deviation.

    ``relative`` (optional): per lead ``h`` the standard deviation of ``e_h - e_pivot``, the error of
    the forecast *gain* of moving from the run "not moving" stands for to lead ``h`` (``relative_spread``),
    learned for the pivot the caller plans with; ``None``: not learned (the premium falls back to
    ``sigma_h - sigma_pivot``).
    """

    bias: FloatArray
    sigma: FloatArray
    relative: FloatArray | None = None

    @staticmethod
    def unknown(n: int) -> LeadErrors:
        return LeadErrors(np.zeros(n), np.full(n, np.nan))


def learn_lead_errors(past_forecasts: FloatArray, past_actuals: FloatArray, min_samples: int = 24) -> LeadErrors:
    """Bias and sigma by lead from ``(K, H)`` past forecasts and the actuals they forecast (NaN = none).

    A lead with fewer than ``min_samples`` known errors gets bias 0 and sigma NaN (unknown).
    """
    err = np.asarray(past_forecasts, dtype=np.float64) - np.asarray(past_actuals, dtype=np.float64)
    known = ~np.isnan(err)
    count = known.sum(axis=0)
    filled = np.where(known, err, 0.0)
    return errors_from_sums(count, filled.sum(axis=0), (filled ** 2).sum(axis=0), min_samples)


def errors_from_sums(count: FloatArray, total: FloatArray, total_sq: FloatArray, min_samples: int = 24) -> LeadErrors:
    """``LeadErrors`` from per-lead counts, sums and sums of squares of errors (for rolling windows)."""
    count = np.asarray(count, dtype=np.float64)
    enough = count >= min_samples
    safe = np.maximum(count, 1.0)
    bias = np.where(enough, total / safe, 0.0)
    var = np.where(enough, np.maximum(total_sq / safe - bias ** 2, 0.0), np.nan)
    return LeadErrors(bias, np.sqrt(var))


def relative_spread(past_errors: FloatArray, pivot: int = 0, pivot_slots: int = 1,
                    min_samples: int = 24) -> FloatArray:
    """Per lead ``h``: the standard deviation of ``e_h - e_pivot`` over ``(K, H)`` past errors (forecast -
    actual, NaN = unknown), ``e_pivot`` the mean error over leads ``pivot .. pivot + pivot_slots - 1``.

    Why: the planner moves work from the pivot run to lead ``h`` for the *forecast gain*
    ``f_pivot - f_h``; its error is ``e_pivot - e_h``, whose spread ``sqrt(s_h^2 + s_p^2 - 2 rho s_h s_p)``
    is at least ``|s_h - s_p|``: a level error common to both leads (rho = 1, equal spreads) does not
    change the ranking (0), independent errors add up (``sqrt(2) s``). Only rows where both are known
    count; a lead with fewer than ``min_samples`` gets NaN; the pivot run's own leads get 0.
    """
    err = np.asarray(past_errors, dtype=np.float64)
    n = err.shape[1] if err.ndim == 2 else 0
    if not n or not err.shape[0]:
        return np.full(n, np.nan)
    lo = min(max(pivot, 0), n - 1)
    hi = min(lo + max(pivot_slots, 1), n)
    d = err - err[:, lo:hi].mean(axis=1, keepdims=True)  # NaN where the pivot run is not fully known
    spread = errors_from_sums(*_sums(d), min_samples=min_samples).sigma
    spread[lo:hi] = 0.0
    return spread


def _sums(err: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    known = ~np.isnan(err)
    filled = np.where(known, err, 0.0)
    return known.sum(axis=0).astype(np.float64), filled.sum(axis=0), (filled ** 2).sum(axis=0)


def _fill_sigma(sigma: FloatArray) -> FloatArray:
    """Unknown sigmas carried forward from the last known lead (0 before any)."""
    out = np.asarray(sigma, dtype=np.float64)
    known = ~np.isnan(out)
    if known.all():
        return out.copy()
    last = np.maximum.accumulate(np.where(known, np.arange(out.shape[0]), -1))
    return np.where(last >= 0, out[np.maximum(last, 0)], 0.0)


def condition(forecast: FloatArray, errors: LeadErrors, history: FloatArray | None = None,
              history_errors: LeadErrors | None = None, premium: float = DEFAULT_PREMIUM, *,
              pivot: int = 0, pivot_slots: int = 1) -> FloatArray:
    """The series to plan on: bias-corrected, blended with ``history``, with a premium on moving.

    ``forecast`` and ``history`` are the same ``n`` slots from the issue time on (NaN = not
    forecast); ``errors``/``history_errors`` cover at least ``n`` leads. Slots neither reaches stay NaN.
    "Not moving" is the run at leads ``pivot .. pivot + pivot_slots - 1`` (by default lead 0:
    running now); it carries no premium, so on a flat forecast it stays the cheapest (equal costs
    go to it). Every other lead ``h`` gets ``premium x`` the spread of the gain of moving there:
    ``relative_h`` (std of ``e_h - e_pivot``, ``LeadErrors.relative``, learned for this pivot) when
    the errors carry it, else ``max(sigma_h - sigma_pivot, 0)`` (a lower bound of that spread).
    """
    f = np.asarray(forecast, dtype=np.float64)
    n = f.shape[0]
    corrected = f - errors.bias[:n]
    sigma = errors.sigma[:n]
    rel = None if errors.relative is None else errors.relative[:n]
    if history is not None and history_errors is not None:
        h = np.asarray(history, dtype=np.float64) - history_errors.bias[:n]
        hs = history_errors.sigma[:n]
        w, blended_sigma = _inverse_variance(corrected, h, sigma, hs)
        blended = np.where(np.isnan(w), corrected, np.nan_to_num(w) * corrected + (1.0 - np.nan_to_num(w)) * h)
        only_h = np.isnan(corrected) & ~np.isnan(h)
        if rel is not None or history_errors.relative is not None:
            hr = np.full(n, np.nan) if history_errors.relative is None else history_errors.relative[:n]
            fr = np.full(n, np.nan) if rel is None else rel
            # the blend's gain error, as its level error: the two sources' spreads combined where both are known
            _, both_rel = _inverse_variance(corrected, h, fr, hr)
            rel = np.where(only_h | (np.isnan(fr) & ~np.isnan(hr)), hr, both_rel)
        corrected = np.where(only_h, h, blended)
        sigma = np.where(only_h, hs, blended_sigma)
    if not n:
        return corrected
    lo = min(max(pivot, 0), n - 1)
    hi = min(lo + max(pivot_slots, 1), n)
    if rel is not None and not np.isnan(rel).all():
        extra = _fill_sigma(rel)
        extra[lo:hi] = 0.0
        return corrected + premium * extra
    sigma = _fill_sigma(sigma)
    ref = float(np.max(sigma[lo:hi]))
    extra = np.maximum(sigma - ref, 0.0)
    return corrected + premium * extra


def _inverse_variance(f: FloatArray, h: FloatArray, sf: FloatArray, sh: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per lead: the weight of ``f`` in the inverse-variance blend of ``f`` and ``h`` (NaN: not both
    known) and the blend's spread (``sf`` where ``h`` is not known or not scored)."""
    var_f, var_h = sf ** 2, sh ** 2
    both = ~np.isnan(f) & ~np.isnan(h) & ~np.isnan(var_f) & ~np.isnan(var_h) & (var_f + var_h > 0)
    total = np.where(both, var_f + var_h, 1.0)
    w = np.where(both, var_h / total, np.nan)
    spread = np.where(both, np.sqrt(np.where(both, var_f * var_h / total, 0.0)), sf)
    return w, spread
