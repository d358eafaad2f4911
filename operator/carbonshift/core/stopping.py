"""Value the slots beyond the forecast horizon, so long-slack and long jobs are still planned.

Why this module exists: a forecast reaches 24-72 h; a job may wait longer, or run longer. Left
unknown (NaN), those slots are never chosen: long-slack jobs lose their slack and a job longer than
the horizon has no window at all. In the spirit of optimal stopping, waiting past the horizon is
worth what the signal's own history says such a slot typically costs: the mean at that time of
day over the last days, plus a premium of ``premium`` standard deviations of that profile's own
error (the value of a slot nobody has forecast yet is uncertain; running on a known window wins
unless the profile says later is clearly cheaper). The planner then compares in-horizon windows
with that threshold, and every cycle re-plans as the horizon moves on.

``slack_aware``: the same, but a slot ``j`` days past the horizon is worth the continuation value
of ``j`` daily chances (``continuation_values``, from the history's empirical distribution), so a
job with days of slack holds out for a lower price than one due tomorrow. Measured, it did not
beat the flat profile on the simulator's ML jobs (docs/benchmarks.md): their slack is under 2.5
days but their runs are up to 90 h, so the slots past the horizon are mostly the tails of runs,
committed unseen when the run starts, where a continuation value is optimistic. It is kept as an
option (the bench's ``learned-stopping`` policy), off in the operator and the simulator.

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
# The slack-aware rule (``fill_beyond_horizon(slack_aware=True)``), off by default: on Sep-Oct 2021
# of DE and SE (ML and ML interruptible; premium -0.5 .. 1, 7..28 days) its best setting, 0.5 and 7
# days, reached 0.555 of the oracle against 0.540 for the flat rule above and 0.565 for the flat
# rule with premium 0; on the 8 ML rows of the other four grids it lost 0.008 of the oracle on average
# (docs/benchmarks.md, "Slack-aware stopping past the horizon").
SLACK_AWARE = False
STOPPING_PREMIUM = 0.5
CHANCE_DAYS = 7  # days of history whose costs at a time of day are a day's chances


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


def continuation_values(history: FloatArray, slots_per_day: int, chances: int,
                        days: int = CHANCE_DAYS) -> FloatArray:
    """``(chances, slots_per_day)``: row ``j - 1`` is what a slot is worth with ``j`` daily chances left.

    Optimal stopping: the cost of a day's chance at a time of day is drawn from what that time of
    day cost over the last ``days`` days of ``history`` (its empirical distribution, no Gaussian
    assumed); with one chance left a slot is worth its mean, with ``j`` it is worth
    ``V_j = E[min(X, V_{j-1})]`` (take the day if it beats waiting). Rows never rise
    (``V_1 >= V_2 >= ...``). Column ``k`` is the phase of a slot ``k`` slots after now, modulo a
    day (as ``daily_profile``). A time of day never measured gives NaN.
    """
    h = np.asarray(history, dtype=np.float64)[-days * slots_per_day:]
    m = h.shape[0]
    out = np.full((max(chances, 0), slots_per_day), np.nan)
    if m == 0 or chances <= 0:
        return out
    # samples[d, k]: the slot of phase k in the d-th day back (NaN where not measured)
    full = -(-m // slots_per_day) * slots_per_day
    padded = np.concatenate([np.full(full - m, np.nan), h])
    phase = (np.arange(full) - full) % slots_per_day
    samples = np.full((full // slots_per_day, slots_per_day), np.nan)
    samples[np.arange(full) // slots_per_day, phase] = padded
    known = ~np.isnan(samples)
    count = known.sum(axis=0)
    seen = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(seen, np.nansum(samples, axis=0) / np.maximum(count, 1), np.nan)
        out[0] = value
        for j in range(1, chances):
            taken = np.where(known, np.minimum(samples, value), 0.0)
            value = np.where(seen, taken.sum(axis=0) / np.maximum(count, 1), np.nan)
            out[j] = value
    return out


def fill_beyond_horizon(planned: FloatArray, history: FloatArray, slots_per_day: int,
                        premium: float = DEFAULT_PREMIUM, *, slack_aware: bool = False,
                        days: int = CHANCE_DAYS) -> FloatArray:
    """``planned`` with its trailing unknown slots valued from ``history``; gaps inside the horizon stay NaN.

    ``slack_aware=False``: every slot past the horizon is worth the 7-day time-of-day profile plus
    ``premium`` times its spread. ``slack_aware=True`` (the learned policy): a slot ``j`` days past
    the horizon is worth the continuation value of ``j`` daily chances (``continuation_values``),
    plus ``premium`` times the profile's spread: values fall with distance, so a job whose deadline
    lies days away waits for a lower price than a job due tomorrow, and as its deadline nears the
    threshold rises toward "take what the forecast offers". The valuation is the same for every
    job (the region's grid is shared); each job's deadline picks how far it reaches.
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
    if not slack_aware:
        out[first_unknown:] = profile[k % slots_per_day] + premium * spread
        return out
    chance = (k - first_unknown) // slots_per_day  # 0: one chance left (the first day past the horizon)
    values = continuation_values(history, slots_per_day, int(chance[-1]) + 1, days)
    out[first_unknown:] = values[chance, k % slots_per_day] + premium * spread
    return out
