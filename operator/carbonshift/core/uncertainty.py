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
    """Per lead (slots ahead of issue): mean forecast - actual, and its standard deviation."""

    bias: FloatArray
    sigma: FloatArray

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
    The premium is ``premium x max(sigma_h - sigma_ref, 0)`` where ``sigma_ref`` is the largest
    sigma of the run "not moving" stands for, leads ``pivot .. pivot + pivot_slots - 1`` (by
    default lead 0: running now): that run carries no premium, so on a flat forecast it stays
    the cheapest (equal costs go to it).
    """
    f = np.asarray(forecast, dtype=np.float64)
    n = f.shape[0]
    corrected = f - errors.bias[:n]
    sigma = errors.sigma[:n]
    if history is not None and history_errors is not None:
        h = np.asarray(history, dtype=np.float64) - history_errors.bias[:n]
        hs = history_errors.sigma[:n]
        var_f, var_h = sigma ** 2, hs ** 2
        both = ~np.isnan(corrected) & ~np.isnan(h) & ~np.isnan(var_f) & ~np.isnan(var_h) & (var_f + var_h > 0)
        w = np.where(both, var_h / np.where(both, var_f + var_h, 1.0), 1.0)
        blended = np.where(both, w * corrected + (1.0 - w) * np.where(both, h, 0.0), corrected)
        blended_sigma = np.where(both, np.sqrt(np.where(both, var_f * var_h / np.where(both, var_f + var_h, 1.0), 0.0)),
                                 sigma)
        only_h = np.isnan(corrected) & ~np.isnan(h)
        corrected = np.where(only_h, h, blended)
        sigma = np.where(only_h, hs, blended_sigma)
    sigma = _fill_sigma(sigma)
    if not n:
        return corrected
    lo = min(max(pivot, 0), n - 1)
    ref = float(np.max(sigma[lo:lo + max(pivot_slots, 1)]))
    extra = np.maximum(sigma - ref, 0.0)
    return corrected + premium * extra
