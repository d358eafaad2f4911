"""``carbonshift run``: the operator process (Kopf on the hub, member clusters by kubeconfig).

Order of start-up: settings -> hub client -> /metrics and probes (every replica) -> leader
election (only the leader goes on) -> Kopf with the scheduler in its memo. Losing the lease stops
the process; a clean stop (SIGTERM) releases it so a follower takes over at once.

API calls go through kube.KubeApi (aiohttp); the official ``kubernetes`` package is never
imported here (it alone cost ~65 MB RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from carbonshift.controller.nokube import kubernetes_hidden

with kubernetes_hidden():  # Kopf would import the official client just because it is installed
    import kopf

    from carbonshift.controller import handlers  # noqa: F401 - registers the Kopf handlers

from carbonshift.controller.clock import AcceleratedClock, Clock, SystemClock
from carbonshift.controller.cycle import Scheduler
from carbonshift.controller.forecastrecords import RecordStore
from carbonshift.controller.health import HealthServer
from carbonshift.controller.kube import DEFAULT_MAX_CONNECTIONS, KubeApi, KubeError
from carbonshift.controller.kubeconfig import Connection, KubeconfigError, resolve_connection
from carbonshift.controller.leader import LeaderElector
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.metrics import Metrics
from carbonshift.controller.paths import secret_path
from carbonshift.controller.settings import OperatorSettings, load_settings
from carbonshift.controller.signalhub import SignalHub
from carbonshift.signals import KubernetesSecretReader
from carbonshift.timefmt import parse_iso

log = logging.getLogger("carbonshift")

#: Longest wait for giving the lease up on shutdown (it expires by itself anyway).
RELEASE_TIMEOUT_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", type=Path, help="operator settings YAML (the chart's ConfigMap)")
    parser.add_argument("--kubeconfig", type=Path,
                        help="kubeconfig of the hub (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)")
    parser.add_argument("--namespace", help="the operator's namespace (lease, Secrets)")
    parser.add_argument("--metrics-port", type=int, help="port for /metrics (0 disables)")
    parser.add_argument("--clock-speed", type=float,
                        help="accelerated clock: simulated seconds per real second (demo only; default 1)")
    parser.add_argument("--clock-origin", help="simulated time at start, RFC 3339 (with --clock-speed)")
    parser.add_argument("--cycle-seconds", type=float, help="longest pause between scheduling cycles")
    parser.add_argument("--no-leader-election", action="store_true", help="act without taking the lease")
    parser.add_argument("--identity", default=None, help="leader-election identity (default: host name + random)")
    parser.add_argument("-v", "--verbose", action="store_true")


def _settings(args: argparse.Namespace) -> OperatorSettings:
    settings = load_settings(args.settings)
    overrides: dict[str, object] = {}
    for arg, field in (("namespace", "namespace"), ("metrics_port", "metrics_port"), ("clock_speed", "clock_speed"),
                       ("cycle_seconds", "cycle_seconds")):
        if getattr(args, arg) is not None:
            overrides[field] = getattr(args, arg)
    if args.clock_origin:
        overrides["clock_origin"] = parse_iso(args.clock_origin)
    if args.no_leader_election:
        overrides["leader_election"] = False
    return settings.model_copy(update=overrides)


def _hub_connection(kubeconfig: Path | None) -> Connection:
    """--kubeconfig; else $KUBECONFIG; else the in-cluster ServiceAccount; else ~/.kube/config.
    Resolved once: Kopf logs in with this same connection (handlers.login)."""
    connection = resolve_connection(kubeconfig)
    log.info("hub: %s%s", connection.server, " (token from exec plugin "
             f"{connection.exec_config.command})" if connection.exec_config else "")
    return connection


def _max_connections(settings: OperatorSettings) -> int:
    # The scheduling cycle runs up to 2 x api_workers calls at once; leave room for the rest.
    return max(DEFAULT_MAX_CONNECTIONS, 4 * settings.api_workers)


def build_clock(settings: OperatorSettings) -> Clock:
    if settings.clock_speed == 1.0 and settings.clock_origin is None:
        return SystemClock()
    origin = settings.clock_origin or datetime.now(timezone.utc)
    log.warning("accelerated clock: %.0fx from %s (demo mode)", settings.clock_speed, origin.isoformat())
    return AcceleratedClock(settings.clock_speed, origin)


async def operate(settings: OperatorSettings, kubeconfig: Path | None, identity: str) -> int:
    hub = KubeApi(_hub_connection(kubeconfig), name="hub", max_connections=_max_connections(settings))
    registry = MemberRegistry(hub, settings.member_probe_seconds, max_connections=_max_connections(settings))
    try:
        if hub.exec_credentials is not None:
            try:  # a plugin that cannot log in at all: say so and stop, rather than retry in Kopf's login
                await hub.login_token()
            except KubeError as exc:
                raise KubeconfigError(str(exc)) from None
        return await _operate(settings, hub, registry, identity)
    finally:
        await registry.aclose()
        await hub.aclose()


def _stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT set ``stop``: a follower stops waiting, a leader stops Kopf (its stop flag)
    and then releases the lease."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests): no signals then
            return


def _readiness(settings: OperatorSettings, elector: LeaderElector | None) -> Callable[[], tuple[bool, str]]:
    def ready() -> tuple[bool, str]:
        if elector is None:
            return True, "ready (leader election off: acting)"
        role = "leader" if elector.leading else "follower"
        contact = elector.last_contact
        if contact is None:
            return False, f"not ready ({role}): the hub's API server has not answered yet"
        age = asyncio.get_running_loop().time() - contact
        if age > settings.lease_seconds:
            return False, f"not ready ({role}): no answer from the hub's API server for {age:.0f} s"
        return True, f"ready ({role})"

    return ready


async def _operate(settings: OperatorSettings, hub: KubeApi, registry: MemberRegistry, identity: str) -> int:
    stop = asyncio.Event()
    lost = asyncio.Event()
    _stop_on_signals(stop)
    keeper = None
    elector = (LeaderElector(hub, settings.namespace, settings.lease_name, identity, settings.lease_seconds)
               if settings.leader_election else None)
    metrics = Metrics()
    metrics.leader.set(0)
    # Metrics and probes on every replica, before the election: a follower is alive and ready too.
    health = HealthServer(metrics, _readiness(settings, elector))
    await health.start(settings.metrics_port, settings.metrics_host)
    try:
        if elector is not None:
            if not await elector.acquire(stop):
                return 0
            keeper = asyncio.create_task(elector.keep(stop, lost))
        metrics.leader.set(1)
        return await _lead(settings, hub, registry, metrics, stop, lost)
    finally:
        stop.set()
        metrics.leader.set(0)
        if keeper is not None:
            await keeper
        if elector is not None and elector.leading and not lost.is_set():
            try:
                await asyncio.wait_for(elector.release(), timeout=RELEASE_TIMEOUT_S)
            except TimeoutError:
                log.warning("releasing the lease took over %.0f s; it expires by itself", RELEASE_TIMEOUT_S)
        await health.stop()


def hub_secrets(hub: KubeApi) -> KubernetesSecretReader:
    """Provider credentials from the hub's Secrets, read with the async client: a slow API server
    must not stall the event loop (every cycle, Kopf handler and probe runs on it)."""

    async def get_secret(namespace: str, name: str) -> Any:
        return await hub.get(secret_path(namespace, name))

    return KubernetesSecretReader(get_secret)


async def _lead(settings: OperatorSettings, hub: KubeApi, registry: MemberRegistry, metrics: Metrics,
                stop: asyncio.Event, lost: asyncio.Event) -> int:
    clock = build_clock(settings)
    secrets = hub_secrets(hub)
    records = None
    if settings.forecast_policy == "learned" and settings.keep_forecast_record:
        # Only the leader gets here: it alone writes records, and reads them before its first plan.
        records = RecordStore(hub, settings.namespace, clock.now)
        await records.load()
    scheduler = Scheduler(
        hub=hub,
        registry=registry,
        signals=SignalHub(now=clock.now, secrets=secrets, slot=settings.slot, horizon=settings.horizon,
                          data_dir=settings.data_dir, forecast_policy=settings.forecast_policy,
                          max_horizon=settings.planning_horizon, records=records),
        clock=clock, settings=settings, metrics=metrics,
    )

    async def stop_when_lost() -> None:
        await lost.wait()
        stop.set()

    started = asyncio.Event()

    async def take_signals_back() -> None:
        # Kopf installs its own SIGTERM handler; with it, a stop waits 5 s for our lease keeper
        # (Kopf's "hung tasks" grace) before the lease can be released. With ours, SIGTERM sets the
        # stop flag, which stops Kopf just as gracefully and ends our waiters at once.
        await started.wait()
        _stop_on_signals(stop)

    # Created before Kopf starts, so Kopf leaves them alone when it stops.
    watchers = [asyncio.create_task(stop_when_lost()), asyncio.create_task(take_signals_back())]
    try:
        await kopf.operator(clusterwide=True, standalone=True, stop_flag=stop, ready_flag=started,
                            memo=kopf.Memo(scheduler=scheduler))
    finally:
        stop.set()
        for watcher in watchers:
            watcher.cancel()
    return 1 if lost.is_set() else 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kopf.objects", "kopf.activities.probe", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = _settings(args)
    identity = args.identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    try:
        return asyncio.run(operate(settings, args.kubeconfig, identity))
    except KubeconfigError as exc:  # no usable hub connection: say why, without a traceback
        log.error("cannot connect to the hub: %s", exc)
        return 2
