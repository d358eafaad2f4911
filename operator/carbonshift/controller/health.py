"""The operator's HTTP endpoint, served by every replica from the moment it starts (followers too):
``/metrics`` (Prometheus), ``/healthz`` (liveness) and ``/readyz`` (readiness).

It runs on the operator's own event loop, not in a thread: a loop that is stuck answers no
probe, and the kubelet restarts the pod. Readiness means "this replica talked to the hub's API
server recently" (a follower polling the Lease counts), so a follower is ready, and a replica
cut off from the hub is not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from carbonshift.controller.metrics import Metrics

log = logging.getLogger(__name__)

#: ``() -> (ready, text)``: the text says the replica's role, and why it is not ready.
ReadyCheck = Callable[[], tuple[bool, str]]


class HealthServer:
    def __init__(self, metrics: Metrics, ready: ReadyCheck) -> None:
        self.metrics = metrics
        self.ready = ready
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        # Answering at all is the check: the handler runs on the operator's event loop.
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        ready, text = self.ready()
        return web.Response(status=200 if ready else 503, text=text + "\n")

    async def start(self, port: int, host: str) -> None:
        """Listens on ``host:port``; port 0 serves nothing (no metrics, no probes)."""
        if not port:
            return
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        log.info("serving /metrics, /healthz and /readyz on %s:%d", host, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
