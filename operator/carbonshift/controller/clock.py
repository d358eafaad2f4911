"""Time for the operator, injected so tests and the demo can control it.

The accelerated clock is explicit: it maps real elapsed seconds onto simulated time at a fixed
speed from a chosen origin, and every code path (planning, dispatch, accounting) reads it.
``monotonic()`` is for rate limits (how often a member is asked again, a count rewritten): real
seconds in the operator, moved by hand with the fixed clock of tests and what-if runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def seconds_until(self, moment: datetime) -> float:
        """Real seconds to wait until the clock shows ``moment`` (0 if already past)."""
        ...

    def from_real(self, moment: datetime) -> datetime:
        """This clock's reading at the real time ``moment`` (e.g. an object's creationTimestamp)."""
        ...

    def monotonic(self) -> float:
        """Seconds for rate limits (only differences count)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds())

    def from_real(self, moment: datetime) -> datetime:
        return moment

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class AcceleratedClock:
    """``speed`` simulated seconds pass per real second, starting at ``origin``."""

    speed: float
    origin: datetime
    _real_start: float = field(default_factory=time.monotonic)
    _real_start_wall: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("clock speed must be positive")
        if self.origin.tzinfo is None:
            raise ValueError("clock origin must be timezone-aware")

    def now(self) -> datetime:
        return self.origin + timedelta(seconds=(time.monotonic() - self._real_start) * self.speed)

    def seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.now()).total_seconds() / self.speed)

    def from_real(self, moment: datetime) -> datetime:
        return self.origin + (moment - self._real_start_wall) * self.speed

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class FixedClock:
    """A clock that moves only when told (``advance``): both its time and its rate-limit seconds."""

    moment: datetime
    ticks: float = 0.0

    def __post_init__(self) -> None:
        if self.moment.tzinfo is None:
            raise ValueError("clock moment must be timezone-aware")

    def now(self) -> datetime:
        return self.moment

    def seconds_until(self, moment: datetime) -> float:
        return max(0.0, (moment - self.moment).total_seconds())

    def from_real(self, moment: datetime) -> datetime:
        return moment

    def monotonic(self) -> float:
        return self.ticks

    def advance(self, delta: timedelta) -> None:
        self.moment += delta
        self.ticks += delta.total_seconds()
