"""Per-region signals for the planner: one provider per MemberCluster, read onto the slot grid.

Staleness is explicit: every reading keeps its observation time, and a region whose provider
failed keeps its last good forecast (marked stale) so the policy's fallback can choose between
"run now" and "trust the last forecast". Nothing here decides; it only reports.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from carbonshift.api import MemberCluster
from carbonshift.core import Battery, Capacity, RegionSignals
from carbonshift.signals import (CarbonProvider, ProviderUnavailable, SecretReader, SecretSource, SignalError, build_energy,
                                 build_provider, resolve_secrets, secret_refs, to_slots)
from carbonshift.core.solar import PanelOrientation, forecast_solar
from carbonshift.signals import Series
from carbonshift.controller.forecastrecords import RecordStore
from carbonshift.signals.conditioning import ForecastConditioner
from carbonshift.signals.prometheus import PrometheusEnergy, pod_energy_joules

log = logging.getLogger(__name__)

# Longest a scheduling cycle waits for one provider (real seconds); see SignalHub.read.
READ_BUDGET_S = 3.0
# Solar of a site without a location (spec.energy latitude/longitude): the current output is
# assumed to persist this long. With a location, a clear-sky model for the site is scaled by the
# last SOLAR_HISTORY of measured output (core/solar.py), refetched at most every SOLAR_HISTORY_TTL.
SOLAR_PERSISTENCE = timedelta(hours=1)
SOLAR_HISTORY = timedelta(days=3)
SOLAR_HISTORY_TTL = timedelta(minutes=10)


def with_battery_reserve(signals: list[RegionSignals], reserve_fraction: float) -> list[RegionSignals]:
    """The regions as one policy's jobs see them: each site battery usable down to ``reserve_fraction``."""
    return [s if s.battery is None else replace(s, battery=replace(s.battery, reserve_fraction=reserve_fraction))
            for s in signals]


@dataclass
class RegionReading:
    region: str
    member: str
    signals: RegionSignals
    observed_at: datetime | None
    current_g_per_kwh: float | None
    source: str
    kind: str
    error: str | None = None  # set when this cycle's fetch failed (the series may be an older one)
    conditioning: str | None = None  # what the learned forecast policy did to the provider's forecast
    valued_from: datetime | None = None  # from here on the grid is valued from history, not forecast

    def age(self, now: datetime) -> timedelta | None:
        return None if self.observed_at is None else now - self.observed_at


@dataclass
class _MemberSignals:
    key: str
    provider: CarbonProvider
    energy: PrometheusEnergy | None
    last_good: RegionReading | None = None
    pending: asyncio.Future[Any] | None = None  # a provider fetch still running from an earlier cycle
    location: tuple[float, float] | None = None  # the site's (latitude, longitude), for the solar forecast
    orientation: PanelOrientation | None = None  # the panels' plane; None: horizontal
    solar_history: Series | None = None
    solar_history_at: datetime | None = None
    conditioner: ForecastConditioner | None = None  # forecastPolicy learned: this region's record


async def _recent_history(entry: _MemberSignals) -> Series | None:
    """The region's measured history for the learned forecast policy (cached hourly by the provider),
    or None: without it the forecast is planned on as it is."""
    recent = getattr(entry.provider, "recent_history", None)
    if entry.conditioner is None or recent is None:
        return None
    try:
        history: Series = await recent()
        return history
    except Exception as exc:  # any failure: without history the forecast is still usable as it is
        log.info("%s: no history for the learned forecast policy: %s", entry.provider.source, exc)
        return None


async def _conditioned(entry: _MemberSignals, intensity: np.ndarray, current: Series, forecast: Series,
                       history: Series | None, start: datetime, slot: timedelta,
                       horizon: timedelta, refit: Executor) -> tuple[np.ndarray, str | None, datetime | None]:
    """The provider's values on the grid as the learned forecast policy conditions them, why, and
    from when on they are valued from history rather than forecast.

    The refit (about 15 ms a region, once an hour or when the forecast changes) runs in ``refit``'s
    one worker thread on a detached copy, so watches, probes and dispatches go on meanwhile (one
    worker: with several, the loop's thread waits behind each of them for the GIL); the copy's
    result is adopted back here, on the loop, so the cycle never sees a half-updated record."""
    conditioner = entry.conditioner
    if conditioner is None:
        return intensity, None, None
    try:
        conditioner.observe(current)
        result = conditioner.cached(forecast, history, start, horizon)
        if result is None:
            twin = conditioner.detached()
            result = await asyncio.get_running_loop().run_in_executor(
                refit, twin.condition, forecast, history, start, horizon)
            conditioner.adopt(twin)
        return result.on_grid(intensity, start, slot), result.reason, result.valued_from
    except Exception:  # a bug here must not stop planning: the raw forecast is still a plan
        log.exception("%s: conditioning the forecast failed; planning on it as it is", entry.provider.source)
        return intensity, None, None


def _drop(pending: asyncio.Future[Any]) -> None:
    """Cancels a fetch nobody will wait for, its outcome marked as seen (else asyncio logs
    "exception was never retrieved" whenever the future is collected)."""
    pending.cancel()
    pending.add_done_callback(lambda done: None if done.cancelled() else done.exception())


def _past_horizon_known(intensity: np.ndarray, n: int) -> np.ndarray:
    """The grid cut after its last known value, never shorter than ``n`` (the horizon): past the
    horizon only hours the learned policy valued (from history) are planned on; a region without
    that history keeps the horizon's grid, where the core still plans a job longer than it."""
    known = np.flatnonzero(~np.isnan(intensity[n:]))
    return intensity[: n + (int(known[-1]) + 1 if known.size else 0)]


@dataclass
class SignalHub:
    now: Callable[[], datetime]
    secrets: SecretSource | None
    slot: timedelta
    horizon: timedelta
    data_dir: Path | None = None  # the admin's folder of trace files (operator setting dataDir)
    forecast_policy: str = "learned"  # operator setting forecastPolicy: learned | raw
    # learned: how far past ``horizon`` the grid may reach where history values the hours (setting
    # maxPlanningHorizonHours); None: the grid ends at ``horizon``.
    max_horizon: timedelta | None = None
    # learned: where each region's forecast record is kept across restarts (None: in memory only).
    records: RecordStore | None = None
    _members: dict[str, _MemberSignals] = field(default_factory=dict)
    # Closes of replaced providers, left to run: the loop keeps only weak references to tasks.
    _closing: set[asyncio.Future[Any]] = field(default_factory=set)
    # Secret reads for a provider about to be built, by member: (its key, the read). One at a time,
    # waited for at most READ_BUDGET_S by a cycle, like a provider's fetch.
    _secret_reads: dict[str, tuple[str, asyncio.Future[SecretReader]]] = field(default_factory=dict)
    _refit: ThreadPoolExecutor | None = None  # the learned policy's refits, one at a time off the loop

    def _refit_pool(self) -> Executor:
        if self._refit is None:
            self._refit = ThreadPoolExecutor(max_workers=1, thread_name_prefix="carbonshift-refit")
        return self._refit

    def _close_later(self, closing: Any) -> None:
        task = asyncio.ensure_future(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _for(self, member: MemberCluster) -> _MemberSignals:
        name = member.metadata.name or ""
        spec = member.spec
        # The uid is part of the key: a deleted and re-created MemberCluster gets a fresh provider
        # (a trace anchor maps onto the time the provider is built).
        key = f'{member.metadata.uid}:{spec.model_dump_json(include={"carbon_signal", "energy", "zone"})}'
        current = self._members.get(name)
        if current is not None and current.key == key:
            return current
        config: dict[str, Any] = spec.carbon_signal.model_dump(by_alias=True, exclude_none=True, mode="json")
        config.setdefault("zone", spec.zone)
        secrets = await self._credentials(name, key, config)
        current = self._members.get(name)  # (another caller may have built it meanwhile)
        if current is not None and current.key != key:
            if current.pending is not None:
                _drop(current.pending)
            self._close_later(current.provider.aclose())  # the replaced provider's connections
            if current.energy is not None:
                self._close_later(current.energy.aclose())
        if current is None or current.key != key:
            provider = build_provider(config, secrets=secrets, now=self.now, data_dir=self.data_dir)
            energy_cfg = spec.energy.model_dump(by_alias=True, exclude_none=True, mode="json") if spec.energy else None
            current = _MemberSignals(key, provider, build_energy(energy_cfg, now=self.now))
            if self.forecast_policy == "learned":
                current.conditioner = ForecastConditioner()
                if self.records is not None:
                    self.records.restore(member, current.conditioner)
            if spec.energy is not None and spec.energy.latitude is not None and spec.energy.longitude is not None:
                current.location = (spec.energy.latitude, spec.energy.longitude)
                if spec.energy.panel_tilt_degrees is not None:  # unset azimuth: facing the equator
                    azimuth = spec.energy.panel_azimuth_degrees
                    if azimuth is None:
                        azimuth = 180.0 if spec.energy.latitude >= 0 else 0.0
                    current.orientation = PanelOrientation(spec.energy.panel_tilt_degrees, azimuth)
            self._members[name] = current
        return current

    async def _credentials(self, name: str, key: str, config: dict[str, Any]) -> SecretReader | None:
        """The Secret keys the provider needs, read with the async client: a slow API server
        stalls neither the event loop nor (past READ_BUDGET_S) the cycle."""
        if self.secrets is None:
            return None  # build_provider says a Secret is needed, if one is
        refs = secret_refs(config)
        if not refs:
            return None
        known = self._secret_reads.get(name)
        if known is not None and known[0] != key:
            known[1].cancel()
        pending: tuple[str, asyncio.Future[SecretReader]] = known if known is not None and known[0] == key else \
            (key, asyncio.ensure_future(resolve_secrets(self.secrets, refs)))
        self._secret_reads[name] = pending
        done, _ = await asyncio.wait({pending[1]}, timeout=READ_BUDGET_S)
        if not done:
            raise ProviderUnavailable(f"reading Secret {refs[0][1]}/{refs[0][0]} took over {READ_BUDGET_S:.0f} s "
                                      "(still waiting for it)")
        if self._secret_reads.get(name) is pending:
            del self._secret_reads[name]  # read again for the next provider built (or after a failure)
        return pending[1].result()

    @property
    def n_slots(self) -> int:
        return int(self.horizon / self.slot)

    def _grid_slots(self, entry: _MemberSignals) -> int:
        """Slots read for a region: past ``horizon`` only when its forecast is conditioned (learned)."""
        if entry.conditioner is None or self.max_horizon is None:
            return self.n_slots
        return max(self.n_slots, int(self.max_horizon / self.slot))

    async def read(self, member: MemberCluster, start: datetime) -> RegionReading:
        """The member's signals on the grid from ``start``; never raises for a provider problem.

        The grid starts at the cycle's "now" (not a slot boundary), so "run now" means now. A
        battery in the reading keeps all its charge in reserve until ``with_battery_reserve``
        applies a policy's reserve: the reserve is the namespace's choice, not the site's.
        """
        name = member.metadata.name or ""
        n = self.n_slots
        spec = member.spec
        capacity = Capacity(spec.capacity.max_concurrent_jobs, spec.capacity.power_budget_watts)
        try:
            entry = await self._for(member)
        except ProviderUnavailable as exc:  # its credentials are still being read
            log.warning("signals for %s: %s", name, exc)
            signals = RegionSignals(spec.region, start, self.slot, np.full(n, np.nan), None, None, capacity, spec.pue)
            return RegionReading(spec.region, name, signals, None, None,
                                 str(spec.carbon_signal.provider), "none", error=str(exc))
        except (SignalError, OSError, ValueError) as exc:  # e.g. a missing trace file: reported, never fatal
            log.warning("signals for %s: %s", name, exc)
            self._members.pop(name, None)
            signals = RegionSignals(spec.region, start, self.slot, np.full(n, np.nan), None, None, capacity, spec.pue)
            return RegionReading(spec.region, name, signals, None, None,
                                 str(spec.carbon_signal.provider), "none", error=f"configuration: {exc}")
        try:
            # A hanging provider (timeouts x retries can take a minute) must not hold up the cycle,
            # and with it every other region's jobs: wait READ_BUDGET_S, then use the fallback and
            # pick the same fetch up again next cycle.
            if entry.pending is None:
                entry.pending = asyncio.ensure_future(
                    asyncio.gather(entry.provider.current(), entry.provider.forecast(self.horizon),
                                   _recent_history(entry)))
            done, _ = await asyncio.wait({entry.pending}, timeout=READ_BUDGET_S)
            if not done:
                raise ProviderUnavailable(f"{entry.provider.source}: no answer within {READ_BUDGET_S:.0f} s "
                                          "(still waiting for it)")
            fetched, entry.pending = entry.pending, None
            current, forecast, history = fetched.result()
            grid = self._grid_slots(entry)
            intensity = to_slots([current, forecast], start, self.slot, grid)
            intensity, conditioning, valued_from = await _conditioned(
                entry, intensity, current, forecast, history, start, self.slot, grid * self.slot, self._refit_pool())
            if self.records is not None and entry.conditioner is not None:
                self.records.save(member, entry.conditioner)
            intensity = _past_horizon_known(intensity, n)
            solar, battery = await self._energy(entry, start, intensity.shape[0])
            reading = RegionReading(
                region=spec.region, member=name,
                signals=RegionSignals(spec.region, start, self.slot, intensity, solar, battery, capacity, spec.pue),
                observed_at=current.observed_at, current_g_per_kwh=current.latest[1],
                source=entry.provider.source, kind=forecast.kind.value, conditioning=conditioning,
                valued_from=valued_from,
            )
            entry.last_good = reading
            return reading
        except SignalError as exc:
            log.warning("signals for %s: %s", name, exc)
            last = entry.last_good
            if last is not None:
                # Re-grid the last good forecast; slots beyond it are unknown (NaN).
                shift = int(round((start - last.signals.start) / self.slot))
                old = last.signals.intensity_g_per_kwh
                intensity = np.full(max(n, len(old) - shift), np.nan)  # (hours valued from history kept)
                if 0 <= shift < len(old):
                    kept = old[shift:]
                    intensity[: len(kept)] = kept
                signals = RegionSignals(spec.region, start, self.slot, intensity, None, None, capacity, spec.pue)
                return RegionReading(spec.region, name, signals, last.observed_at,
                                     last.current_g_per_kwh, last.source, last.kind, error=str(exc),
                                     conditioning=last.conditioning, valued_from=last.valued_from)
            signals = RegionSignals(spec.region, start, self.slot, np.full(n, np.nan), None, None, capacity, spec.pue)
            return RegionReading(spec.region, name, signals, None, None,
                                 entry.provider.source, "none", error=str(exc))

    async def _energy(self, entry: _MemberSignals, start: datetime, n: int) -> tuple[np.ndarray | None, Battery | None]:
        if entry.energy is None:
            return None, None
        try:
            snap = await entry.energy.snapshot()
        except SignalError as exc:
            log.warning("%s: on-site energy unavailable: %s", entry.provider.source, exc)
            return None, None
        solar = None
        if snap.solar_power is not None and snap.solar_power.points:
            solar = await self._solar(entry, snap.solar_power, start, n)
        battery = None
        if snap.battery_capacity is not None and snap.battery_state_of_charge is not None:
            battery = Battery(
                capacity_wh=snap.battery_capacity.latest[1],
                state_of_charge_fraction=snap.battery_state_of_charge.latest[1],
                reserve_fraction=1.0,  # nothing usable until a policy's reserve is applied
                max_discharge_w=snap.battery_max_discharge_watts or math.inf,
            )
        return solar, battery

    async def _solar(self, entry: _MemberSignals, current: Series, start: datetime, n: int) -> np.ndarray:
        """Solar W per slot: the clear-sky forecast when the site's location is known and its
        history shows daylight output, else the current output held for SOLAR_PERSISTENCE."""
        if entry.location is not None and entry.energy is not None:
            now = self.now()
            if entry.solar_history_at is None or now - entry.solar_history_at > SOLAR_HISTORY_TTL:
                entry.solar_history_at = now  # a failing Prometheus is asked again after the TTL, not every cycle
                try:
                    entry.solar_history = await entry.energy.solar_history(now - SOLAR_HISTORY, now)
                except SignalError as exc:
                    log.warning("%s: solar history unavailable (%s); keeping the last one", entry.provider.source, exc)
            past_n = int(SOLAR_HISTORY / self.slot)
            measured = [s for s in (entry.solar_history, current) if s is not None and s.points]
            past = to_slots(measured, start - past_n * self.slot, self.slot, past_n)
            forecast = forecast_solar(past, self.slot.total_seconds(), start.timestamp(), n, *entry.location,
                                      entry.orientation)
            if forecast.any():
                return forecast
        solar = np.zeros(n)
        solar[: max(1, int(SOLAR_PERSISTENCE / self.slot))] = current.latest[1]
        return solar

    async def history_mean(self, member: MemberCluster, start: datetime, end: datetime) -> float | None:
        """Mean measured intensity over ``[start, end)``, for accounting; None if unknown."""
        try:
            provider = (await self._for(member)).provider
            series = await asyncio.wait_for(provider.history(start, end), READ_BUDGET_S)
        except (TimeoutError, SignalError, OSError, ValueError):
            return None
        if end <= start:
            return None
        values = to_slots(series, start, end - start, 1)
        return None if math.isnan(values[0]) else float(values[0])

    async def measured_energy_wh(self, member: MemberCluster, namespace: str, job_name: str, start: datetime,
                                 end: datetime) -> float | None:
        """IT energy the member Job's pods used, from Kepler's counters in the member's Prometheus."""
        try:
            energy = (await self._for(member)).energy
        except (SignalError, OSError, ValueError):
            return None
        if energy is None or end <= start:
            return None
        try:
            # Job names are DNS labels ([a-z0-9-]): nothing in them needs regex escaping.
            series = await pod_energy_joules(energy.prom, namespace, f"{job_name}-.*", start, end, pod_is_regex=True,
                                             kepler=energy.kepler)
        except SignalError:
            return None
        return series.latest[1] / 3600.0

    async def aclose(self) -> None:
        for _, reading in self._secret_reads.values():
            reading.cancel()
        self._secret_reads.clear()
        for entry in self._members.values():
            if entry.pending is not None:
                _drop(entry.pending)
            await entry.provider.aclose()
            if entry.energy is not None:
                await entry.energy.aclose()
        self._members.clear()
        if self.records is not None:
            await self.records.aclose()
        if self._refit is not None:
            self._refit.shutdown(wait=False, cancel_futures=True)
            self._refit = None
