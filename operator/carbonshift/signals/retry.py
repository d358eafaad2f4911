"""Retry policy: exponential backoff with full jitter, honouring HTTP 429 ``Retry-After``.

The random source and the sleep function are injectable so tests are fast and deterministic.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "parse_retry_after"]

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class RetryPolicy:
    """``attempts`` tries in total; delay n is uniform in [0, min(cap, base * 2**n)]."""

    attempts: int = 4
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Sleep = asyncio.sleep

    def backoff(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(self.cap_seconds, self.base_seconds * (2**attempt)))

    def delay_for(self, attempt: int, retry_after: float | None) -> float:
        """Server hint wins when present (capped), else jittered backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_seconds)
        return self.backoff(attempt)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    ref = now or datetime.now(timezone.utc)
    return max(0.0, (when - ref).total_seconds())
