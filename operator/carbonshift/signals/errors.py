"""One exception tree for every signal provider, so callers catch one family.

Library errors (aiohttp, csv parsing) are translated into
these exactly once, at the provider boundary, with ``raise ... from exc`` so the cause is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "SignalError",
    "ProviderUnavailable",
    "RateLimited",
    "AuthenticationFailed",
    "ForecastNotSupported",
    "BadSignalData",
    "StaleSignal",
    "SignalConfigError",
]


class SignalError(Exception):
    """Base of every error raised by ``carbonshift.signals``."""


class ProviderUnavailable(SignalError):
    """The provider could not be reached or answered with a server error (after retries)."""


class RateLimited(ProviderUnavailable):
    """The provider kept answering HTTP 429; ``retry_after`` is its last hint in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthenticationFailed(ProviderUnavailable):
    """The provider refused our credentials (HTTP 401/403). Retrying will not help."""


class ForecastNotSupported(ProviderUnavailable):
    """The provider (or its configuration) offers no forecast; a fallback must be used."""


class BadSignalData(SignalError):
    """The provider answered, but the data cannot be trusted (see ``issues``)."""

    def __init__(self, message: str, issues: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.issues = tuple(issues)


class StaleSignal(SignalError):
    """The newest observation is older than the allowed maximum age."""

    def __init__(self, message: str, age_seconds: float) -> None:
        super().__init__(message)
        self.age_seconds = age_seconds


class SignalConfigError(SignalError):
    """A ``carbonSignal`` / ``energy`` configuration block is invalid or incomplete."""
