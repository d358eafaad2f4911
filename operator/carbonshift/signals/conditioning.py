"""The learned forecast policy in the operator: a provider's forecast conditioned on its own record.

Why this module exists: the planner picks the cheapest window of the series it is given, so a
provider's forecast that is biased, or noisy far ahead, moves work for gains that are not there,
and the slots past the provider's horizon (unknown) are never chosen. ``core.uncertainty`` and
``core.stopping`` correct both, as the simulator's ``learned`` policy (``sim/policy.py``) does; they
need the errors each forecast source made before. Per region this module keeps:

* a record of the provider's forecasts, one per issue hour (the first seen in that hour), for the
  last ``WINDOW_DAYS``. Scored against measured values once their hour has passed, the issues at
  the same time of day give the provider's bias and spread by hour ahead. Until ``MIN_DAYS`` days
  are recorded the forecast is not bias-corrected (the reason says so). ``export_record`` and
  ``import_record`` turn the record (with the measured hours below) into plain data and back
  (``record.py``), so the operator keeps it across restarts;
* the hourly means of the current values it was shown, so a provider whose history is short
  (Electricity Maps: 24 h) can still be scored;
* nothing for the built-in forecaster: it is deterministic from history, so its errors are
  recomputed by backtesting it on that history at the same time of day (``BACKTEST_DAYS``).

Work is hourly (issue hour = the UTC hour containing now). The result reaches the planner's grid
as a per-hour correction of the provider's own values, so a 15-minute forecast keeps its shape.
No I/O and no clock: the caller passes ``now``, the forecast and the history.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from carbonshift.core.forecaster import forecast_day_ahead
from carbonshift.core.stopping import BEYOND_PREMIUM, PROFILE_DAYS, SLACK_AWARE, fill_beyond_horizon
from carbonshift.core.uncertainty import DEFAULT_PREMIUM, LeadErrors, condition, learn_lead_errors
from carbonshift.timefmt import ensure_utc, to_iso

from .record import ForecastRecord
from .series import Series, SeriesKind, to_slots

__all__ = ["ForecastConditioner", "Conditioned", "WINDOW_DAYS", "MIN_DAYS"]

FloatArray = npt.NDArray[np.float64]

_HOUR = timedelta(hours=1)
WINDOW_DAYS = 28  # past issues scored, and hours of measured values kept
MIN_DAYS = 7  # issues at this time of day needed before a lead's error counts (as sim/policy.py)
RECORD_LEADS = 48  # hours of each provider forecast recorded; longer leads reuse the last one's errors
BUILTIN_LEADS = 48  # the built-in forecast reaches two days; past it the history profile values slots
BACKTEST_DAYS = 21  # built-in backtests: issues 1..21 days ago (each with at least a week of history)
_PAST = WINDOW_DAYS * 24


@dataclass(frozen=True)
class Conditioned:
    """The hourly series to plan on, from the issue hour on, and why it differs from the provider's."""

    issue_hour: datetime
    provider: FloatArray  # the provider's forecast, hourly (NaN where it has none)
    planned: FloatArray  # what the planner should minimise, hourly
    reason: str | None  # None: planned on the provider's values as they are
    valued_from: datetime | None = None  # first hour valued from history, not forecast (core.stopping)

    def on_grid(self, raw: FloatArray, start: datetime, slot: timedelta) -> FloatArray:
        """``raw`` (the provider's values on the planner's grid) with this hour's correction applied;
        slots ``raw`` leaves unknown get the planned value of their hour."""
        raw = np.asarray(raw, dtype=np.float64)
        n = raw.shape[0]
        mids = (ensure_utc(start) - self.issue_hour).total_seconds() + (np.arange(n) + 0.5) * slot.total_seconds()
        hour = np.floor(mids / 3600.0).astype(np.int64)
        inside = (hour >= 0) & (hour < self.planned.shape[0])
        idx = np.clip(hour, 0, max(0, self.planned.shape[0] - 1))
        planned = self.planned[idx] if self.planned.size else np.full(n, np.nan)
        shift = planned - (self.provider[idx] if self.provider.size else np.full(n, np.nan))
        out = raw.copy()
        corrected = inside & ~np.isnan(raw) & ~np.isnan(shift)
        out[corrected] = raw[corrected] + shift[corrected]
        filled = inside & np.isnan(raw) & ~np.isnan(planned)
        out[filled] = planned[filled]
        return np.where(np.isnan(out), out, np.maximum(out, 0.0))


def _fingerprint(series: Series | None) -> tuple[object, ...]:
    if series is None:
        return ()
    return (series.source, series.kind, series.observed_at, hash(series.points))


def _pad(errors: LeadErrors, n: int) -> LeadErrors:
    """``errors`` for exactly ``n`` leads; leads past the known ones reuse the last one's (as sim/policy.py)."""
    have = errors.bias.shape[0]
    if n <= have:
        return LeadErrors(errors.bias[:n], errors.sigma[:n])
    if have == 0:
        return LeadErrors.unknown(n)
    return LeadErrors(np.concatenate([errors.bias, np.full(n - have, errors.bias[-1])]),
                      np.concatenate([errors.sigma, np.full(n - have, errors.sigma[-1])]))


def _scored(issued: list[FloatArray], offsets: list[int], actual: FloatArray) -> LeadErrors | None:
    """Errors by lead of forecasts issued ``offsets`` hours before the end of ``actual`` (hourly)."""
    if not issued:
        return None
    leads = issued[0].shape[0]
    truth = np.full((len(issued), leads), np.nan)
    end = actual.shape[0]
    for row, back in enumerate(offsets):
        target = end - back + np.arange(leads)
        ok = (target >= 0) & (target < end)  # only hours already measured
        truth[row, ok] = actual[target[ok]]
    return learn_lead_errors(np.vstack(issued), truth, min_samples=MIN_DAYS)


def _days_scored(issued: list[FloatArray], offsets: list[int], actual: FloatArray) -> int:
    end = actual.shape[0]
    count = 0
    for forecast, back in zip(issued, offsets):
        target = end - back + np.arange(forecast.shape[0])
        ok = (target >= 0) & (target < end)
        if np.any(~np.isnan(forecast[ok]) & ~np.isnan(actual[target[ok]])):
            count += 1
    return count


class ForecastConditioner:
    """One region's learned forecast policy (see the module docstring); not thread-safe, one per region."""

    def __init__(self, premium: float = DEFAULT_PREMIUM, beyond_premium: float = BEYOND_PREMIUM) -> None:
        self.premium, self.beyond_premium = premium, beyond_premium
        self._issued: dict[int, npt.NDArray[np.float32]] = {}  # issue hour (hours since epoch) -> forecast
        self._measured: dict[int, tuple[float, int]] = {}  # hour -> (sum, count) of current values seen
        self._last_measured: datetime | None = None
        self._pruned_at: int | None = None
        self._actual: tuple[tuple[object, ...], FloatArray] | None = None
        self._backtest: tuple[tuple[object, ...], LeadErrors | None, int] | None = None
        self._result: tuple[tuple[object, ...], Conditioned] | None = None
        self._restored_through: int | None = None  # the last issue hour restored by import_record

    @property
    def recorded_issues(self) -> int:
        return len(self._issued)

    @property
    def latest_issue_hour(self) -> int | None:
        """The newest recorded issue hour (hours since the epoch): the record changes when this does."""
        return max(self._issued) if self._issued else None

    def export_record(self) -> ForecastRecord:
        """The record as plain arrays (a copy: later recording does not change it)."""
        hours = sorted(self._issued)
        measured = sorted(self._measured)
        return ForecastRecord(
            issue_hours=np.array(hours, dtype=np.int64),
            issued=(np.vstack([self._issued[h] for h in hours]) if hours
                    else np.empty((0, RECORD_LEADS), dtype=np.float32)).astype(np.float32),
            measured_hours=np.array(measured, dtype=np.int64),
            measured_sum=np.array([self._measured[h][0] for h in measured], dtype=np.float64),
            measured_count=np.array([self._measured[h][1] for h in measured], dtype=np.int64),
            last_measured_s=None if self._last_measured is None else self._last_measured.timestamp(),
        )

    def import_record(self, record: ForecastRecord, now: datetime) -> None:
        """Replaces the record by ``record`` (e.g. the one kept before a restart); raises
        ``RecordError`` and changes nothing if it is not a valid record as of ``now``."""
        now_hour = math.floor(ensure_utc(now).timestamp() / 3600)
        record.check(RECORD_LEADS, now_hour)
        self._issued = {int(h): np.array(row, dtype=np.float32) for h, row in zip(record.issue_hours, record.issued)}
        self._measured = {int(h): (float(total), int(count)) for h, total, count
                          in zip(record.measured_hours, record.measured_sum, record.measured_count)}
        self._last_measured = (None if record.last_measured_s is None
                               else datetime.fromtimestamp(record.last_measured_s, tz=ensure_utc(now).tzinfo))
        self._restored_through = self.latest_issue_hour
        self._pruned_at = self._actual = self._backtest = self._result = None
        self._prune(now_hour)

    def observe(self, current: Series) -> None:
        """Remember the newest measured value (once per timestamp), for scoring past forecasts."""
        if not current.points:
            return
        at, value = current.latest
        if self._last_measured is not None and at <= self._last_measured:
            return
        self._last_measured = at
        hour = math.floor(at.timestamp() / 3600)
        total, count = self._measured.get(hour, (0.0, 0))
        self._measured[hour] = (total + value, count + 1)

    def condition(self, forecast: Series, history: Series | None, now: datetime, horizon: timedelta) -> Conditioned:
        """The series to plan on from the hour containing ``now`` until ``now + horizon``."""
        ready = self._prepare(forecast, history, now, horizon)
        if isinstance(ready, Conditioned):
            return ready
        key, issue, hour, leads, provider = ready
        result = self._compute(forecast, provider, history, issue, hour, leads)
        self._result = (key, result)
        return result

    def cached(self, forecast: Series, history: Series | None, now: datetime, horizon: timedelta) -> Conditioned | None:
        """Records ``forecast`` as ``condition`` does and returns its result when nothing it depends on
        changed since it was computed; None: it must be computed (about 15 ms, once an hour), which
        ``condition`` on a ``detached`` copy can do in another thread."""
        ready = self._prepare(forecast, history, now, horizon)
        return ready if isinstance(ready, Conditioned) else None

    def detached(self) -> ForecastConditioner:
        """A copy that may ``condition`` in another thread while this one goes on recording: the
        dicts are copied, the recorded arrays shared (they are never changed in place)."""
        twin = copy.copy(self)
        twin._issued, twin._measured = dict(self._issued), dict(self._measured)
        return twin

    def adopt(self, twin: ForecastConditioner) -> None:
        """Takes over what ``twin`` (from ``detached``) computed. Each cache is keyed by the inputs it
        was computed from, so a result for inputs that changed meanwhile is never returned."""
        self._actual, self._backtest, self._result = twin._actual, twin._backtest, twin._result

    def _prepare(self, forecast: Series, history: Series | None, now: datetime, horizon: timedelta
                 ) -> Conditioned | tuple[tuple[object, ...], datetime, int, int, FloatArray]:
        """Records the forecast, then the cached result, or what computing it needs."""
        now = ensure_utc(now)
        issue = now.replace(minute=0, second=0, microsecond=0)
        hour = math.floor(issue.timestamp() / 3600)
        leads = max(1, math.ceil((now + horizon - issue) / _HOUR))
        provider = to_slots(forecast, issue, _HOUR, leads)
        if forecast.kind == SeriesKind.FORECAST and hour not in self._issued:
            record = np.full(RECORD_LEADS, np.nan, dtype=np.float32)
            record[: min(leads, RECORD_LEADS)] = provider[:RECORD_LEADS]
            self._issued[hour] = record
        self._prune(hour)
        key = (hour, leads, _fingerprint(forecast), _fingerprint(history), len(self._issued))
        if self._result is not None and self._result[0] == key:
            return self._result[1]
        return key, issue, hour, leads, provider

    def _prune(self, hour: int) -> None:
        """Forget what is older than the window (once an hour: the record stays bounded whatever comes)."""
        if hour == self._pruned_at:
            return
        self._pruned_at = hour
        oldest = hour - _PAST - 1
        for old in [h for h in self._issued if h < oldest]:
            del self._issued[old]
        for old in [h for h in self._measured if h < oldest]:
            del self._measured[old]

    def _actuals(self, history: Series | None, issue: datetime, hour: int) -> FloatArray:
        """Hourly measured values of the ``WINDOW_DAYS`` before ``issue`` (history first, else what was seen)."""
        key = (hour, _fingerprint(history))
        if self._actual is not None and self._actual[0] == key:
            return self._actual[1]
        seen = np.full(_PAST, np.nan)
        for h, (total, count) in self._measured.items():
            i = h - (hour - _PAST)
            if 0 <= i < _PAST and count:
                seen[i] = total / count
        actual = seen
        if history is not None and history.points:
            past = to_slots(history, issue - _PAST * _HOUR, _HOUR, _PAST)
            actual = np.where(np.isnan(past), seen, past)
        self._actual = (key, actual)
        return actual

    def _builtin_errors(self, actual: FloatArray, issue: datetime, key: tuple[object, ...]) -> tuple[LeadErrors | None, int]:
        """The built-in forecaster's errors by lead, backtested at this time of day on ``actual``."""
        if self._backtest is not None and self._backtest[0] == key:
            return self._backtest[1], self._backtest[2]
        issued, offsets = [], []
        for days in range(1, BACKTEST_DAYS + 1):
            back = 24 * days
            past = actual[: _PAST - back]
            if not np.any(~np.isnan(past)):
                continue
            issued.append(forecast_day_ahead(past, 3600, (issue - back * _HOUR).timestamp(), BUILTIN_LEADS))
            offsets.append(back)
        errors = _scored(issued, offsets, actual)
        days_scored = _days_scored(issued, offsets, actual)
        self._backtest = (key, errors, days_scored)
        return errors, days_scored

    def _compute(self, forecast: Series, provider: FloatArray, history: Series | None, issue: datetime,
                 hour: int, leads: int) -> Conditioned:
        if forecast.kind not in (SeriesKind.FORECAST, SeriesKind.BUILTIN_FORECAST):
            return Conditioned(issue, provider, provider, None)  # a weekly profile: nothing learned about it
        actual = self._actuals(history, issue, hour)
        builtin_errors, builtin_days = self._builtin_errors(actual, issue, (hour, _fingerprint(history)))
        builtin_known = builtin_errors is not None and bool(np.any(~np.isnan(builtin_errors.sigma)))
        parts: list[str] = []
        if forecast.kind == SeriesKind.BUILTIN_FORECAST:
            own = _pad(builtin_errors, leads) if builtin_errors is not None else LeadErrors.unknown(leads)
            planned = condition(provider, own, premium=self.premium)
            parts.append(_bias_text("the built-in forecast", own, builtin_known,
                                    f"backtested on {builtin_days} days of history",
                                    "history too short to backtest it", self.premium))
            blended = None
        else:
            offsets = [24 * d for d in range(1, WINDOW_DAYS + 1) if hour - 24 * d in self._issued]
            issued = [self._issued[hour - back].astype(np.float64) for back in offsets]
            scored = _scored(issued, offsets, actual)
            own = _pad(scored, leads) if scored is not None else LeadErrors.unknown(leads)
            own_known = bool(np.any(~np.isnan(own.sigma)))
            days = _days_scored(issued, offsets, actual)
            parts.append(_bias_text(f"{forecast.source}'s forecast", own, own_known,
                                    f"learned from {days} days of its forecasts{self._restored_text(hour, offsets, actual)}",
                                    f"{days} of {MIN_DAYS} days of its forecasts at this hour recorded",
                                    self.premium))
            blended = np.full(leads, np.nan)
            builtin_leads = min(leads, BUILTIN_LEADS)
            if np.any(~np.isnan(actual)):
                blended[:builtin_leads] = forecast_day_ahead(actual, 3600, issue.timestamp(), builtin_leads)
            hist_errors = _pad(builtin_errors, leads) if builtin_errors is not None else LeadErrors.unknown(leads)
            planned = condition(provider, own, blended, hist_errors, self.premium)
            if builtin_known and own_known:
                parts.append(f"blended with the built-in forecast (errors backtested on {builtin_days} days)")
        before_fill = planned
        planned = fill_beyond_horizon(planned, actual, 24, self.beyond_premium, slack_aware=SLACK_AWARE)
        parts.extend(_beyond_text(issue, provider, blended, before_fill, planned))
        return Conditioned(issue, provider, planned, "; ".join(parts), _valued_from(issue, before_fill, planned))

    def _restored_text(self, hour: int, offsets: list[int], actual: FloatArray) -> str:
        """How many of the scored days came from a record kept across a restart (``import_record``)."""
        if self._restored_through is None:
            return ""
        kept = [back for back in offsets if hour - back <= self._restored_through]
        days = _days_scored([self._issued[hour - back].astype(np.float64) for back in kept], kept, actual)
        return f", {days} of them recorded before the operator restarted" if days else ""


def _bias_text(what: str, errors: LeadErrors, known: bool, learned: str, unknown: str, premium: float) -> str:
    if not known:
        return f"{what} is not bias-corrected: its errors are not known yet ({unknown})"
    known_leads = np.flatnonzero(~np.isnan(errors.sigma))
    lead = int(known_leads[np.argmax(np.abs(errors.bias[known_leads]))])  # the largest correction
    correction = round(-float(errors.bias[lead])) + 0  # + 0 turns -0 into 0
    return (f"{what} bias-corrected by up to {correction:+d} g/kWh ({lead} h ahead; {learned}); waiting priced "
            f"at {premium:g} x the extra forecast error")


def _valued_from(issue: datetime, before_fill: FloatArray, planned: FloatArray) -> datetime | None:
    """The first hour whose value came from history (``core.stopping``), not from a forecast."""
    conditioned = np.flatnonzero(~np.isnan(before_fill))
    fill_from = int(conditioned[-1]) + 1 if conditioned.size else 0
    if fill_from >= planned.shape[0] or np.isnan(planned[fill_from:]).all():
        return None
    return issue + fill_from * _HOUR


def _beyond_text(issue: datetime, provider: FloatArray, builtin: FloatArray | None, before_fill: FloatArray,
                 planned: FloatArray) -> list[str]:
    """Which hours past the provider's forecast were valued from what."""
    parts = []
    known = np.flatnonzero(~np.isnan(provider))
    provider_end = int(known[-1]) + 1 if known.size else 0
    if builtin is not None and provider_end < provider.shape[0] and not np.isnan(builtin[provider_end:]).all():
        parts.append(f"hours from {to_iso(issue + provider_end * _HOUR)} valued from the built-in forecast")
    conditioned = np.flatnonzero(~np.isnan(before_fill))
    fill_from = int(conditioned[-1]) + 1 if conditioned.size else 0
    if fill_from < planned.shape[0] and not np.isnan(planned[fill_from:]).all():
        parts.append(f"hours from {to_iso(issue + fill_from * _HOUR)} valued from the {PROFILE_DAYS}-day profile")
    return parts
