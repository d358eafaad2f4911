"""An asyncio TTL cache with single-flight: one fetch per key, however many callers wait.

The whole signals package uses asyncio (the operator runs on Kopf's event loop); blocking
libraries are run in a thread by their provider. The clock is injected so tests control expiry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

__all__ = ["TTLCache"]

T = TypeVar("T")


class TTLCache(Generic[T]):
    """Results live for ``ttl``; concurrent ``get`` calls for one key share one fetch.

    Errors are not cached: the next caller tries again (its provider applies backoff).
    """

    def __init__(self, ttl: timedelta, now: Callable[[], datetime]) -> None:
        self._ttl = ttl
        self._now = now
        self._values: dict[Hashable, tuple[datetime, T]] = {}
        self._inflight: dict[Hashable, asyncio.Future[T]] = {}
        self.fetches = 0  # how many times a fetch really ran (for tests and metrics)

    def peek(self, key: Hashable) -> T | None:
        """The cached value even if expired (last known good), or None."""
        entry = self._values.get(key)
        return entry[1] if entry else None

    def invalidate(self, key: Hashable | None = None) -> None:
        if key is None:
            self._values.clear()
        else:
            self._values.pop(key, None)

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        entry = self._values.get(key)
        if entry is not None and self._now() < entry[0]:
            return entry[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            self.fetches += 1
            value = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        else:
            self._values[key] = (self._now() + self._ttl, value)
            future.set_result(value)
            return value
        finally:
            del self._inflight[key]
