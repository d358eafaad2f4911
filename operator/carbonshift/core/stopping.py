"""Value the slots beyond the forecast horizon, so long-slack and long jobs are still planned.

Why this module exists: a forecast reaches 24-72 h; a job may wait longer, or run longer. Left
unknown (NaN), those slots are never chosen: long-slack jobs lose their slack and a job longer than
the horizon has no window at all. In the spirit of optimal stopping, waiting past the horizon is
worth what the signal's own history says such a slot typically costs: the mean at that time of
day over the last days, plus a premium of ``premium`` standard deviations of that profile's own
error (the value of a slot nobody has forecast yet is uncertain; running on a known window wins
unless the profile says later is clearly cheaper). The planner then compares in-horizon windows
with that threshold, and every cycle re-plans as the horizon moves on.

Pure numpy, no clock.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from carbonshift.core.uncertainty import DEFAULT_PREMIUM

FloatArray = npt.NDArray[np.float64]

PROFILE_DAYS = 7
# The premium past the horizon used by both the simulator's learned policy and the operator. Chosen
# on Sep-Oct 2021 of DE and SE (ML, nightly ±2 h; beyond -0.5 .. 1): the profile *minus* half its
# spread, the expected best of the several chances a long wait still has (optimal stopping's
# continuation value).
BEYOND_PREMIUM = -0.5


def daily_profile(history: FloatArray, slots_per_day: int, days: int = PROFILE_DAYS) -> tuple[FloatArray, float]:
    """Mean by time of day over the last ``days`` days of ``history`` (last value = slot before now).

    Returns the profile indexed by "slots before now modulo a day" phase (``profile[k]`` is the
    value for a slot ``k`` slots after now, modulo a day) and the profile's error spread (std of
    history minus profile). NaNs are ignored; an empty history gives NaN.
    """
    h = np.asarray(history, dtype=np.float64)[-days * slots_per_day:]
    m = h.shape[0]
    if m == 0:
        return np.full(slots_per_day, np.nan), float("nan")
    # phase of each history slot relative to "now" (slot m): slot m + k has phase k % day
    phase = (np.arange(m) - m) % slots_per_day
    total = np.bincount(phase, weights=np.nan_to_num(h), minlength=slots_per_day)
    count = np.bincount(phase, weights=~np.isnan(h), minlength=slots_per_day)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(count > 0, total / count, np.nan)
    resid = h - profile[phase]
    spread = float(np.nanstd(resid)) if np.any(~np.isnan(resid)) else float("nan")
    return profile, spread


def fill_beyond_horizon(planned: FloatArray, history: FloatArray, slots_per_day: int,
                        premium: float = DEFAULT_PREMIUM) -> FloatArray:
    """``planned`` with its trailing unknown slots valued by the history profile plus a premium.

    Only the NaN tail (past the last forecast slot) is filled; gaps inside the horizon stay NaN.
    """
    out = np.asarray(planned, dtype=np.float64).copy()
    known = np.flatnonzero(~np.isnan(out))
    first_unknown = int(known[-1]) + 1 if known.size else 0
    if first_unknown >= out.shape[0]:
        return out
    profile, spread = daily_profile(history, slots_per_day)
    if np.isnan(spread):
        return out
    k = np.arange(first_unknown, out.shape[0])
    out[first_unknown:] = profile[k % slots_per_day] + premium * spread
    return out
