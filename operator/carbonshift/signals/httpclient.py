"""HTTP for the signal providers: aiohttp sessions per event loop, and the JSON client the SaaS
providers share (retries, 429 handling and error translation).

aiohttp is the operator's one HTTP library: Kopf needs it and the Kubernetes client
(controller/kube.py) uses it. Connection and timeout errors become ``ProviderUnavailable`` (or
``RateLimited`` / ``AuthenticationFailed``) and undecodable bodies ``BadSignalData``, here and
only here (Prometheus has its own answer format: prometheus.py). Headers are never logged: they
carry tokens. TLS is verified against the system's CA certificates; proxies come from the
environment (HTTPS_PROXY, NO_PROXY), as before with httpx.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from .errors import AuthenticationFailed, BadSignalData, ProviderUnavailable, RateLimited
from .retry import RetryPolicy, parse_retry_after

__all__ = ["JsonClient", "LoopSession", "TRANSPORT_ERRORS", "reason", "status_error"]

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

#: What a request raises when the server cannot be reached or does not answer in time.
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def status_error(response: aiohttp.ClientResponse, message: str) -> aiohttp.ClientResponseError:
    """An HTTP error status as an exception (the cause of the ``SignalError`` raised for it)."""
    return aiohttp.ClientResponseError(response.request_info, response.history, status=response.status,
                                       message=message, headers=response.headers)


def reason(exc: BaseException) -> str:
    """What went wrong, in words (an HTTP status error's own message, not its URL)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.message
    return str(exc) or type(exc).__name__


class LoopSession:
    """One aiohttp session per event loop: pooled connections belong to the loop that opened them
    (tests run one loop per call; the operator one loop for its life)."""

    def __init__(self, timeout: float, headers: Mapping[str, str] | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout, trust_env=True)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        session, loop = self._session, self._loop
        self._session = self._loop = None
        if session is not None and loop is asyncio.get_running_loop():
            await session.close()


class JsonClient:
    """GET JSON from ``base_url`` with retries."""

    def __init__(self, base_url: str, *, name: str, timeout: float = 10.0, retry: RetryPolicy | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.retry = retry or RetryPolicy()
        self._session = LoopSession(timeout)

    async def aclose(self) -> None:
        await self._session.aclose()

    async def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        if auth is not None:
            basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers = {**(headers or {}), "Authorization": f"Basic {basic}"}
        last_error: Exception | None = None
        last_status: int | None = None
        retry_after: float | None = None
        for attempt in range(self.retry.attempts):
            retry_after = None
            try:
                async with self._session.get().get(url, params=params, headers=headers) as response:
                    status, body = response.status, await response.read()
                    if status in (401, 403):
                        raise AuthenticationFailed(f"{self.name}: {path} refused our credentials (HTTP {status})")
                    if status in _RETRYABLE_STATUS:
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                        last_error, last_status = status_error(response, f"HTTP {status}"), status
                        log.info("%s: GET %s -> HTTP %d, attempt %d", self.name, path, status, attempt + 1)
                    elif status >= 400:
                        text = body[:200].decode("utf-8", "replace")
                        raise ProviderUnavailable(f"{self.name}: GET {path} -> HTTP {status}: {text}")
                    else:
                        try:
                            return json.loads(body)
                        except ValueError as exc:
                            raise BadSignalData(f"{self.name}: {path} did not return JSON") from exc
            except TRANSPORT_ERRORS as exc:
                last_error, last_status = exc, None
                log.info("%s: GET %s failed (%s), attempt %d", self.name, path, type(exc).__name__, attempt + 1)
            if attempt + 1 < self.retry.attempts:
                await self.retry.sleep(self.retry.delay_for(attempt, retry_after))
        assert last_error is not None
        if last_status == 429:
            raise RateLimited(
                f"{self.name}: rate limited on {path} after {self.retry.attempts} attempts", retry_after=retry_after
            ) from last_error
        raise ProviderUnavailable(
            f"{self.name}: GET {path} failed after {self.retry.attempts} attempts: {reason(last_error)}"
        ) from last_error
