"""Forecast conditioning: denoise a carbon-intensity forecast before planning.

Why this module exists: when forecast errors are largely uncorrelated from slot to slot (as in
the Let's Wait Awhile error model: i.i.d. Gaussian noise), picking "the k cheapest slots" of a
noisy forecast systematically picks slots whose noise happened to be negative (the winner's
curse). A short centred moving average removes much of that noise while barely blurring a grid
signal that changes slowly at 15–60-minute resolution. It is an opt-in step for the caller (the
simulator's ``--forecast-smoothing``, or a signal provider), never applied to actuals, so the
oracle stays the planner fed actual values.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def smooth_forecast(values: FloatArray, window_slots: int) -> FloatArray:
    """Centred moving average over ``window_slots`` slots (edges padded; NaN stays NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if window_slots <= 1 or values.size == 0:
        return values.copy()
    unknown = np.isnan(values)
    filled = values.copy()
    if unknown.any():
        idx = np.flatnonzero(~unknown)
        if idx.size == 0:
            return values.copy()
        filled = np.interp(np.arange(values.size), idx, values[idx])
    left = window_slots // 2
    padded = np.pad(filled, (left, window_slots - 1 - left), mode="edge")
    out = np.convolve(padded, np.full(window_slots, 1.0 / window_slots), mode="valid")
    out[unknown] = np.nan
    return out
