"""Helpers shared by the signals tests (imported by name: tests/ has no __init__.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from datetime import datetime, timezone
from typing import Any, TypeVar

T = TypeVar("T")

# Imported by name from here, not from conftest: another folder's conftest may hold that name.
#: The backfilled period of the Prometheus fixture (the calendar map replays the traces' 2022 dates).
BACKFILL_START = datetime(2020, 6, 1, tzinfo=timezone.utc)
BACKFILL_END = datetime(2020, 6, 6, tzinfo=timezone.utc)
KEPLER_POD = ("batch", "train-1")
KEPLER_WATTS = 100.0
KEPLER_START = datetime(2020, 6, 2, 0, tzinfo=timezone.utc)
KEPLER_END = datetime(2020, 6, 2, 6, tzinfo=timezone.utc)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on a fresh event loop (no pytest-asyncio needed)."""
    return asyncio.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeSleep:
    """Records the delays a RetryPolicy asks for, without sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


