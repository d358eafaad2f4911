"""``carbonshift exporter``: real traces and a simulated site served as Prometheus metrics.

Per region it serves the trace replay's current intensity and forecast gauges for the next
hours, plus simulated solar power and battery state (``simulated="true"``), so a real
Prometheus can scrape realistic signals. ``--speed N`` runs an explicit accelerated clock.
``--backfill-file`` writes the same series for a past period as OpenMetrics for
``promtool tsdb create-blocks-from openmetrics``, then exits.

Metric names (all gauges):
  carbonshift_grid_intensity_g_per_kwh{region,zone,source}
  carbonshift_grid_intensity_forecast_g_per_kwh{region,zone,horizon}   value for the slot
      [sample time + horizon, + forecast step); horizon is Go-style, e.g. "3h"
  carbonshift_solar_power_watts{region,simulated}
  carbonshift_battery_state_of_charge_ratio{region,simulated}          0..1
  carbonshift_battery_capacity_watt_hours{region,simulated}
  carbonshift_exporter_trace_time_seconds{region}                      trace instant replayed
  carbonshift_exporter_clock_speed                                     the --speed factor
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from carbonshift.timefmt import ensure_utc

from .errors import SignalError
from .openmetrics import Family, write_openmetrics
from .prometheus import parse_duration
from .series import to_slots
from .simsite import SimulatedSite, utc_now
from .trace import AnchoredTimeMap, CalendarTimeMap, TimeMap, TraceProvider, parse_anchor
from .tracedata import KNOWN_TRACES, load_trace, resolve_trace_path

__all__ = ["add_arguments", "run", "Clock", "RegionReplay", "build_regions", "samples", "serve", "write_backfill"]

log = logging.getLogger(__name__)

DEFAULT_REGIONS = ("de=DE", "gb=GB")

# (name, help)
INTENSITY = ("carbonshift_grid_intensity_g_per_kwh", "Grid carbon intensity now (trace replay), gCO2eq/kWh.")
FORECAST = ("carbonshift_grid_intensity_forecast_g_per_kwh",
            "Forecast grid carbon intensity for [sample time + horizon, + step), gCO2eq/kWh.")
SOLAR = ("carbonshift_solar_power_watts", "On-site solar power (SIMULATED), W.")
SOC = ("carbonshift_battery_state_of_charge_ratio", "Battery state of charge 0..1 (SIMULATED).")
CAPACITY = ("carbonshift_battery_capacity_watt_hours", "Battery usable capacity (SIMULATED), Wh.")
TRACE_TIME = ("carbonshift_exporter_trace_time_seconds", "Trace instant being replayed, Unix seconds.")
SPEED = ("carbonshift_exporter_clock_speed", "Clock speed factor (1 = real time).")


class Clock:
    """An explicit clock: ``start`` at wall time of creation, running ``speed`` times faster.

    ``set`` pins it to a fixed instant (backfill writes past periods that way).
    """

    def __init__(self, start: datetime, speed: float = 1.0, wall: Callable[[], float] = time.monotonic) -> None:
        self.start = ensure_utc(start)
        self.speed = speed
        self._wall = wall
        self._wall0 = wall()
        self._pinned: datetime | None = None

    def set(self, value: datetime) -> None:
        self._pinned = ensure_utc(value)

    def __call__(self) -> datetime:
        if self._pinned is not None:
            return self._pinned
        return self.start + timedelta(seconds=(self._wall() - self._wall0) * self.speed)


@dataclass
class RegionReplay:
    region: str
    zone: str
    provider: TraceProvider
    site: SimulatedSite


def build_regions(specs: list[str], clock: Callable[[], datetime], *, time_map: TimeMap, noise: float, seed: int,
                  site_kwargs: dict[str, Any], site_clock: Callable[[], datetime] | None = None) -> list[RegionReplay]:
    """``region=ZONE`` (a zone with a bundled trace) or ``region=PATH[#column]``.

    ``site_clock`` is the simulated site's time (default ``clock``): with an anchor it is the
    replayed trace instant, so the sun shines at the trace's noon, not the wall clock's.
    Raises ``ValueError`` for a malformed spec and ``SignalError`` for an unreadable trace.
    """
    regions = []
    for spec in specs:
        name, sep, target = spec.partition("=")
        if not sep or not name or not target:
            raise ValueError(f"--region wants NAME=ZONE or NAME=PATH[#column], got {spec!r}")
        path_text, _, column = target.partition("#")
        zone = path_text if path_text in KNOWN_TRACES else name.upper()
        trace = load_trace(resolve_trace_path(path_text), column or None)
        provider = TraceProvider(trace, now=clock, time_map=time_map, zone=zone, noise=noise, seed=seed)
        regions.append(RegionReplay(name, zone, provider, SimulatedSite(now=site_clock or clock, **site_kwargs)))
    return regions


def _horizon_label(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def samples(regions: list[RegionReplay], *, forecast_hours: int, forecast_step: timedelta,
            speed: float) -> Iterator[tuple[tuple[str, str], dict[str, str], float]]:
    """Every sample at the regions' clock now: ``((name, help), labels, value)``."""
    count = max(1, int(timedelta(hours=forecast_hours) / forecast_step))
    for r in regions:
        now = r.provider.now()
        current = r.provider.current_now()
        yield INTENSITY, {"region": r.region, "zone": r.zone, "source": r.provider.source}, current.latest[1]
        forecast = r.provider.forecast_now(forecast_step * count)
        slots = to_slots(forecast, now, forecast_step, count)
        for i, value in enumerate(slots):
            if np.isfinite(value):
                yield FORECAST, {"region": r.region, "zone": r.zone, "horizon": _horizon_label(forecast_step * i)}, float(value)
        sim = {"region": r.region, "simulated": "true"}
        yield SOLAR, sim, r.site.solar_power_watts()
        yield SOC, sim, float(r.site.battery_state_of_charge())
        yield CAPACITY, sim, r.site.battery_capacity_wh
        yield TRACE_TIME, {"region": r.region}, r.provider.trace_time().timestamp()
    yield SPEED, {}, speed


class _ReplayCollector(Collector):
    def __init__(self, produce: Callable[[], Iterator[tuple[tuple[str, str], dict[str, str], float]]]) -> None:
        self._produce = produce

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        label_names: dict[str, list[str]] = {}
        for (name, help_text), labels, value in self._produce():
            if name not in families:
                label_names[name] = sorted(labels)
                families[name] = GaugeMetricFamily(name, help_text, labels=label_names[name])
            families[name].add_metric([labels[k] for k in label_names[name]], value)
        yield from families.values()


def serve(regions: list[RegionReplay], *, host: str, port: int, forecast_hours: int, forecast_step: timedelta,
          speed: float) -> tuple[object, threading.Thread]:
    """Start serving ``/metrics``; returns prometheus_client's (server, thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReplayCollector(
        lambda: samples(regions, forecast_hours=forecast_hours, forecast_step=forecast_step, speed=speed)
    ))
    return start_http_server(port, addr=host, registry=registry)


def write_backfill(path: Path, regions: list[RegionReplay], clock: Clock, *, start: datetime, end: datetime,
                   step: timedelta, forecast_hours: int, forecast_step: timedelta) -> int:
    """Write the exporter's series for ``[start, end)`` every ``step`` as OpenMetrics."""
    families: dict[str, Family] = {}
    t = ensure_utc(start)
    while t < end:
        clock.set(t)
        for (name, help_text), labels, value in samples(regions, forecast_hours=forecast_hours,
                                                          forecast_step=forecast_step, speed=1.0):
            if name == SPEED[0]:
                continue
            families.setdefault(name, Family(name, "gauge", help_text)).add(labels, t.timestamp(), value)
        t += step
    with path.open("w", encoding="utf-8") as out:
        return write_openmetrics(out, families.values())


def _iso(text: str) -> datetime:
    return parse_anchor(text)


def _duration(text: str) -> timedelta:
    return parse_duration(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9464, help="listen port (default 9464)")
    parser.add_argument("--region", action="append", default=None, metavar="NAME=ZONE|PATH[#COLUMN]",
                        help=f"a region and its trace (repeatable; default {' '.join(DEFAULT_REGIONS)}; "
                             f"zones with bundled traces: {', '.join(sorted(KNOWN_TRACES))})")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="clock speed factor: N simulated seconds per wall second (default 1 = real time)")
    parser.add_argument("--start", type=_iso, default=None,
                        help="simulated time at startup, ISO-8601 (default: now)")
    parser.add_argument("--anchor", type=_iso, default=None,
                        help="trace instant replayed at --start; the simulated site follows it too "
                             "(default: same day-of-year and time in the trace's year)")
    parser.add_argument("--forecast-hours", type=int, default=24, help="forecast gauges cover this many hours")
    parser.add_argument("--forecast-step", type=_duration, default=timedelta(hours=1), help="forecast slot (default 1h)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="relative std-dev of seeded forecast noise (default 0: perfect foresight, "
                             "or the recorded forecast for DACF traces)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the forecast noise")
    parser.add_argument("--solar-peak-watts", type=float, default=50_000.0)
    parser.add_argument("--battery-capacity-wh", type=float, default=100_000.0)
    parser.add_argument("--site-load-watts", type=float, default=20_000.0)
    parser.add_argument("--solar-trace", type=Path, default=None,
                        help="CSV of normalised PV output (0..1), e.g. Vessim's Solcast sample (research data, not "
                             "shipped); default: a clear-sky bell curve")
    parser.add_argument("--solar-city", default="Berlin", help="column of --solar-trace to use")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many wall seconds")
    parser.add_argument("--backfill-file", type=Path, default=None,
                        help="write OpenMetrics for [--backfill-start, --backfill-end) and exit")
    parser.add_argument("--backfill-start", type=_iso, default=None)
    parser.add_argument("--backfill-end", type=_iso, default=None)
    parser.add_argument("--backfill-step", type=_duration, default=timedelta(minutes=15))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.speed <= 0:
        print("--speed must be positive", file=sys.stderr)
        return 2
    start = args.start or utc_now()
    clock = Clock(start, args.speed)
    time_map: TimeMap = AnchoredTimeMap(args.anchor, start) if args.anchor else CalendarTimeMap()
    site: dict[str, Any] = {"solar_peak_watts": args.solar_peak_watts, "battery_capacity_wh": args.battery_capacity_wh,
                            "site_load_watts": args.site_load_watts, "city": args.solar_city,
                            "solar_trace": args.solar_trace}
    anchor = args.anchor
    site_clock = (lambda: anchor + (clock() - start)) if anchor else clock
    try:
        regions = build_regions(args.region or list(DEFAULT_REGIONS), clock, time_map=time_map, noise=args.noise,
                                seed=args.seed, site_kwargs=site, site_clock=site_clock)
    except (ValueError, SignalError) as exc:
        print(f"carbonshift exporter: {exc}", file=sys.stderr)
        return 2
    if args.backfill_file:
        if not (args.backfill_start and args.backfill_end):
            print("--backfill-file needs --backfill-start and --backfill-end", file=sys.stderr)
            return 2
        n = write_backfill(args.backfill_file, regions, clock, start=args.backfill_start, end=args.backfill_end,
                           step=args.backfill_step, forecast_hours=args.forecast_hours, forecast_step=args.forecast_step)
        print(f"wrote {n} samples to {args.backfill_file}")
        return 0
    server, _thread = serve(regions, host=args.host, port=args.port, forecast_hours=args.forecast_hours,
                            forecast_step=args.forecast_step, speed=args.speed)
    log.info("serving http://%s:%d/metrics (regions %s, speed x%g, solar %s)", args.host, args.port,
             ", ".join(r.region for r in regions), args.speed, regions[0].site.model if regions else "-")
    stop = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if in_main else None
    try:
        stop.wait(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
    return 0


