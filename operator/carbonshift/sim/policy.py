"""The learned forecast policy in the simulator: the core's uncertainty and stopping rules, fed in time.

Why this module exists: ``core.uncertainty`` and ``core.stopping`` need the errors of the source's
past forecasts and the signal's history as known at each issue time. Here every forecast the
source issued is computed once (``(slots, leads)``), and per-lead error sums over the last
``window_days`` are read from running sums, so conditioning a forecast costs O(leads) per cycle.
At issue slot ``t`` only forecasts whose target slot is before ``t`` are scored (their actual is
known), exactly what an operator that records its forecasts would know.
"""

from __future__ import annotations

import numpy as np

from carbonshift.core.stopping import BEYOND_PREMIUM, CHANCE_DAYS, SLACK_AWARE, fill_beyond_horizon
from carbonshift.core.uncertainty import DEFAULT_PREMIUM, LeadErrors, condition, errors_from_sums
from carbonshift.sim.forecasts import ForecastSource, builtin_source
from carbonshift.sim.online import Conditioner

# Premiums (core.uncertainty.DEFAULT_PREMIUM, core.stopping.BEYOND_PREMIUM) chosen on Sep-Oct 2021
# of DE and SE (ML, nightly ±2 h; premium 0, 0.5, 1 and beyond -0.5 .. 1); the operator uses the same.
MAX_LEADS = 336  # 7 days of 30-minute slots; longer leads reuse the last one's errors
_BUILTIN_CACHE: dict[tuple[float, int, bytes, bool], tuple[ForecastSource, _Errors]] = {}


class _Errors:
    """Rolling per-lead error statistics of one source over the whole trace."""

    def __init__(self, source: ForecastSource, leads: int, window_slots: int, by_time_of_day: bool = False) -> None:
        actual = source.grid.actual
        n_slots = actual.shape[0]
        self.leads, self.window = leads, window_slots
        self.day = source.grid.slots_per_day
        self.by_time_of_day = by_time_of_day
        self.issued = source.issue(np.arange(n_slots), leads)  # (T, H)
        target = np.arange(n_slots)[:, None] + np.arange(leads)[None, :]
        truth = np.full(target.shape, np.nan)
        ok = target < n_slots
        truth[ok] = actual[target[ok]]
        err = self.issued - truth
        self.err = err  # kept for the gain's spread per pivot (``relative``)
        self._relative: dict[tuple[int, int, int], np.ndarray] = {}
        known = ~np.isnan(err)
        filled = np.where(known, err, 0.0)
        if by_time_of_day:
            # issues at the same time of day only (rows t, t - day, t - 2 day, ...): a forecast's
            # bias at night differs from its bias at noon
            days = -(-n_slots // self.day)
            pad = days * self.day - n_slots

            def per_day(x: np.ndarray) -> np.ndarray:
                x = np.vstack([x, np.zeros((pad, leads))]).reshape(days, self.day, leads)
                return np.concatenate([np.zeros((1, self.day, leads)), np.cumsum(x, axis=0)])
            self.count, self.total, self.total_sq = per_day(known.astype(float)), per_day(filled), per_day(filled ** 2)
            return
        self.count = np.vstack([np.zeros((1, leads)), np.cumsum(known, axis=0)])
        self.total = np.vstack([np.zeros((1, leads)), np.cumsum(filled, axis=0)])
        self.total_sq = np.vstack([np.zeros((1, leads)), np.cumsum(filled ** 2, axis=0)])

    def at(self, t: int, n: int) -> LeadErrors:
        """Errors by lead of the issues whose targets are all before ``t`` (last ``window`` issues)."""
        h = np.arange(self.leads)
        if self.by_time_of_day:
            r, k = t % self.day, t // self.day
            hi = np.clip(k - (h + self.day) // self.day + 1, 0, None)  # issues t - j day with j >= ceil((h+1)/day)
            lo = np.minimum(np.clip(hi - self.window // self.day, 0, None), hi)
            errs = errors_from_sums(self.count[hi, r, h] - self.count[lo, r, h], self.total[hi, r, h] - self.total[lo, r, h],
                                    self.total_sq[hi, r, h] - self.total_sq[lo, r, h], min_samples=7)
            return self._pad(errs, n)
        hi = np.clip(t - h, 0, None)  # issues t' <= t - 1 - h, as an exclusive row bound
        lo = np.minimum(np.clip(t - h - self.window, 0, None), hi)
        cols = h
        errs = errors_from_sums(self.count[hi, cols] - self.count[lo, cols],
                                self.total[hi, cols] - self.total[lo, cols],
                                self.total_sq[hi, cols] - self.total_sq[lo, cols])
        return self._pad(errs, n)

    def relative(self, t: int, n: int, pivot: int, pivot_slots: int) -> np.ndarray | None:
        """Per lead ``h``: the spread of ``e_h - e_pivot`` over the same issues ``at`` scores for lead
        ``max(h, pivot end)`` (same time of day, both targets measured before ``t``, last ``window``)."""
        if not self.by_time_of_day:
            return None
        key = (t, pivot, pivot_slots)
        out = self._relative.get(key)
        if out is None:
            leads = self.leads
            p = min(max(pivot, 0), leads - 1)
            ps = max(1, min(pivot_slots, leads - p))
            last = np.maximum(np.arange(leads), p + ps - 1)
            first_j = (last + self.day) // self.day  # issues t - j day with j day > the lead: measured by t
            days = self.window // self.day
            js = np.arange(1, int(first_j.max()) + days)
            js = js[t - js * self.day >= 0]
            rows = self.err[t - js * self.day]
            d = rows - rows[:, p:p + ps].mean(axis=1, keepdims=True)
            use = (js[:, None] >= first_j[None, :]) & (js[:, None] < first_j[None, :] + days)
            d = np.where(use, d, np.nan)
            known = ~np.isnan(d)
            filled = np.where(known, d, 0.0)
            out = errors_from_sums(known.sum(axis=0), filled.sum(axis=0), (filled ** 2).sum(axis=0), min_samples=7).sigma
            out[p:p + ps] = 0.0
            if len(self._relative) > 4096:
                self._relative.clear()
            self._relative[key] = out
        if n <= out.shape[0]:
            return out[:n]
        return np.concatenate([out, np.full(n - out.shape[0], out[-1])])

    def _pad(self, errs: LeadErrors, n: int) -> LeadErrors:
        if n <= self.leads:
            return LeadErrors(errs.bias[:n], errs.sigma[:n])
        pad = n - self.leads
        return LeadErrors(np.concatenate([errs.bias, np.full(pad, errs.bias[-1])]),
                          np.concatenate([errs.sigma, np.full(pad, errs.sigma[-1])]))


class LearnedConditioner(Conditioner):
    """Bias-corrected, blended with the built-in forecaster, premium on waiting, beyond-horizon values."""

    def __init__(self, source: ForecastSource, window_days: int = 28, premium: float = DEFAULT_PREMIUM,
                 blend: bool = True, beyond_premium: float | None = BEYOND_PREMIUM, by_time_of_day: bool = True,
                 slack_aware: bool = SLACK_AWARE, chance_days: int = CHANCE_DAYS, relative: bool = False) -> None:
        self.source, self.premium, self.relative = source, premium, relative
        self.slack_aware, self.chance_days = slack_aware, chance_days
        self.beyond_premium = premium if beyond_premium is None else beyond_premium
        self.day = source.grid.slots_per_day
        leads = min(MAX_LEADS, source.horizon_slots or MAX_LEADS)
        self.errors = _Errors(source, leads, window_days * self.day, by_time_of_day)
        self.history: tuple[ForecastSource, _Errors] | None = None
        if blend and source.name not in ("actual", "builtin"):
            grid = source.grid
            key = (grid.start_epoch, grid.step_seconds, grid.actual.tobytes(), by_time_of_day)  # same signal: same built-in forecasts
            if key not in _BUILTIN_CACHE:
                _BUILTIN_CACHE.clear()
                hist = builtin_source(source.grid, 2 * self.day)
                _BUILTIN_CACHE[key] = (hist, _Errors(hist, 2 * self.day, window_days * self.day, by_time_of_day))
            self.history = _BUILTIN_CACHE[key]

    def condition(self, t: int, issued: np.ndarray, *, pivot: int = 0, pivot_slots: int = 1) -> np.ndarray:
        n = issued.shape[0]
        errors = self._with_relative(self.errors, t, n, pivot, pivot_slots)
        history = history_errors = None
        if self.history is not None:
            _, hist_err = self.history
            m = min(n, hist_err.leads)
            history = np.full(n, np.nan)
            history[:m] = hist_err.issued[t, :m] if t < hist_err.issued.shape[0] else np.nan
            history_errors = self._with_relative(hist_err, t, n, pivot, pivot_slots)
        planned = condition(issued, errors, history, history_errors, self.premium, pivot=pivot, pivot_slots=pivot_slots)
        past = self.source.grid.actual[max(0, t - 28 * self.day):t]
        return fill_beyond_horizon(planned, past, self.day, self.beyond_premium, slack_aware=self.slack_aware,
                                   days=self.chance_days)

    def _with_relative(self, errors: _Errors, t: int, n: int, pivot: int, pivot_slots: int) -> LeadErrors:
        at = errors.at(t, n)
        if not self.relative or pivot >= errors.leads:
            return at  # a pivot past this source's reach: its gain is not scored (the other source's is)
        return LeadErrors(at.bias, at.sigma, errors.relative(t, n, pivot, pivot_slots))


def learned_conditioner(source: ForecastSource, **kwargs: object) -> Conditioner:
    return LearnedConditioner(source, **kwargs)  # type: ignore[arg-type]


class BacktestedConditioner(Conditioner):
    """For jobs with a preferred start, the candidate policy that did best on the same decision lately.

    At issue slot ``t`` a group of jobs asks for ``n`` leads with its "not shifting" run at lead
    ``pivot`` (a preferred start, e.g. a nightly job's 01:00). Each candidate is replayed on the same
    decision issued ``k`` days earlier (``k = 1 .. days``, only issues whose ``n`` targets are
    measured by ``t``): the slot it would have picked among those ``n`` leads, scored on actuals
    against the pivot slot. The candidate with the largest realised gain is used (the first on
    ties): learned online, from the signal's own recent past, never in hindsight.
    Jobs without a preferred start (pivot 0: the ML and hourly jobs, many of them with different
    durations and windows in one group) get the first candidate: one replayed slot is not their
    decision, and selecting by it lost 0.1-0.3 of the oracle on ML rows.
    """

    def __init__(self, source: ForecastSource, candidates: list[Conditioner], days: int = 28) -> None:
        self.source, self.candidates, self.days = source, candidates, days
        self.day = source.grid.slots_per_day
        self.actual = source.grid.actual
        self._cache: dict[tuple[int, int, int, int], float] = {}
        self._series: dict[tuple[int, int, int, int], np.ndarray] = {}

    def _gain(self, c: int, s: int, n: int, pivot: int, pivot_slots: int) -> float:
        key = (c, s, n, pivot)
        if key not in self._cache:
            # a lead's conditioned value does not depend on how many leads are asked for: one long series per issue
            series_key = (c, s, pivot, pivot_slots)
            values = self._series.get(series_key)
            if values is None or values.shape[0] < n:
                length = max(n, 2 * self.day)
                values = self.candidates[c].condition(s, self.source.issue(s, length), pivot=pivot, pivot_slots=pivot_slots)
                self._series[series_key] = values
            head = values[:n]
            gain = 0.0
            if np.isfinite(head).any():
                pick = int(np.nanargmin(head))
                gain = float(self.actual[s + pivot] - self.actual[s + pick])
            self._cache[key] = 0.0 if np.isnan(gain) else gain
        return self._cache[key]

    def condition(self, t: int, issued: np.ndarray, *, pivot: int = 0, pivot_slots: int = 1) -> np.ndarray:
        n = issued.shape[0]
        if pivot <= 0:
            return self.candidates[0].condition(t, issued, pivot=pivot, pivot_slots=pivot_slots)
        past = [t - k * self.day for k in range(1, self.days + 1) if t - k * self.day >= 0 and t - k * self.day + n <= t]
        best, best_gain = 0, -np.inf
        if past:
            for c in range(len(self.candidates)):
                g = sum(self._gain(c, s, n, pivot, pivot_slots) for s in past)
                if g > best_gain + 1e-9:
                    best, best_gain = c, g
        return self.candidates[best].condition(t, issued, pivot=pivot, pivot_slots=pivot_slots)


def backtested_conditioner(source: ForecastSource, days: int = 28) -> Conditioner:
    """Per decision, the learned policy or the raw forecast, whichever did better on it over the last ``days``."""
    return BacktestedConditioner(source, [LearnedConditioner(source), Conditioner()], days)
