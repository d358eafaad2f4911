"""Writes run as tasks beside the scheduling cycle, one per job (or per cleanup item).

A slow API server must not hold back planning: the cycle decides, then each job's writes run as
one task while the next cycle plans the others. A job whose task is still running is left alone
by cycles until it ends, and the semaphore bounds how many jobs have writes in flight at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Tasks:
    def __init__(self, concurrency: int) -> None:
        self._semaphore = asyncio.Semaphore(concurrency)
        self._inflight: dict[str, asyncio.Task[None]] = {}  # key (a job uid, "orphan:...") -> its task

    def busy(self, key: str) -> bool:
        return key in self._inflight

    def spawn(self, key: str, work: Coroutine[Any, Any, object], what: str | None = None,
              done: Callable[[], None] | None = None) -> None:
        """Runs ``work`` as the task of ``key``; ``done`` is called when it ends, however it ends."""

        async def run() -> None:
            try:
                async with self._semaphore:
                    await work
            except Exception:  # one job's failure must not touch the others; the next cycle retries
                log.exception("acting on %s failed", what or key)
            finally:
                self._inflight.pop(key, None)
                if done is not None:
                    done()

        self._inflight[key] = asyncio.create_task(run(), name=f"work-{what or key}")

    async def settle(self, timeout: float | None = None) -> None:
        """Waits for the tasks in flight (and those they started), at most ``timeout`` seconds in all."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._inflight:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            finished, _ = await asyncio.wait(list(self._inflight.values()), timeout=left)
            if not finished:
                return
