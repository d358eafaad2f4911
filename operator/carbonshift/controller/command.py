"""``carbonshift run``: the operator process (Kopf on the hub, member clusters by kubeconfig).

Order of start-up: settings -> hub client -> leader election (only the leader goes on) ->
/metrics -> Kopf with the scheduler in its memo. Losing the lease stops the process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from carbonshift.controller import handlers  # noqa: F401 - registers the Kopf handlers
from carbonshift.controller.clock import AcceleratedClock, Clock, SystemClock
from carbonshift.controller.cycle import Scheduler
from carbonshift.controller.kube import KubeApi
from carbonshift.controller.leader import LeaderElector
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.metrics import Metrics
from carbonshift.controller.settings import OperatorSettings, load_settings
from carbonshift.controller.signalhub import SignalHub
from carbonshift.signals import KubernetesSecretReader

log = logging.getLogger("carbonshift")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", type=Path, help="operator settings YAML (the chart's ConfigMap)")
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig of the hub (default: in-cluster, then $KUBECONFIG)")
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
        overrides["clock_origin"] = datetime.fromisoformat(args.clock_origin.replace("Z", "+00:00"))
    if args.no_leader_election:
        overrides["leader_election"] = False
    return settings.model_copy(update=overrides)


def _hub_client(kubeconfig: Path | None) -> k8s.ApiClient:
    if kubeconfig is not None:
        os.environ["KUBECONFIG"] = str(kubeconfig)  # Kopf's own login reads it too
        return k8s_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        k8s_config.load_incluster_config()
        return k8s.ApiClient()
    except k8s_config.ConfigException:
        return k8s_config.new_client_from_config()


def build_clock(settings: OperatorSettings) -> Clock:
    if settings.clock_speed == 1.0 and settings.clock_origin is None:
        return SystemClock()
    origin = settings.clock_origin or datetime.now(timezone.utc)
    log.warning("accelerated clock: %.0fx from %s (demo mode)", settings.clock_speed, origin.isoformat())
    return AcceleratedClock(settings.clock_speed, origin)


async def operate(settings: OperatorSettings, kubeconfig: Path | None, identity: str) -> int:
    executor = ThreadPoolExecutor(max_workers=settings.api_workers, thread_name_prefix="kube")
    hub = KubeApi(_hub_client(kubeconfig), executor, name="hub")
    stop = asyncio.Event()
    lost = asyncio.Event()
    keeper = None
    if settings.leader_election:
        elector = LeaderElector(hub, settings.namespace, settings.lease_name, identity, settings.lease_seconds)
        if not await elector.acquire(stop):
            return 0
        keeper = asyncio.create_task(elector.keep(stop, lost))
    clock = build_clock(settings)
    metrics = Metrics()
    metrics.serve(settings.metrics_port, settings.metrics_host)
    secrets = KubernetesSecretReader(k8s.CoreV1Api(hub.api_client))
    scheduler = Scheduler(
        hub=hub,
        registry=MemberRegistry(hub, executor, settings.member_probe_seconds),
        signals=SignalHub(now=clock.now, secrets=secrets, slot=settings.slot, horizon=settings.horizon),
        clock=clock, settings=settings, metrics=metrics,
    )

    async def stop_when_lost() -> None:
        await lost.wait()
        stop.set()

    watcher = asyncio.create_task(stop_when_lost())
    try:
        await kopf.operator(clusterwide=True, standalone=True, stop_flag=stop, memo=kopf.Memo(scheduler=scheduler))
    finally:
        stop.set()
        watcher.cancel()
        if keeper is not None:
            await keeper
        executor.shutdown(wait=False, cancel_futures=True)
    return 1 if lost.is_set() else 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("kopf.objects", "kopf.activities.probe", "urllib3", "httpx", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = _settings(args)
    identity = args.identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    return asyncio.run(operate(settings, args.kubeconfig, identity))
