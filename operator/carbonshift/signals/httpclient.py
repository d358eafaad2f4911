"""The one HTTP client the SaaS providers share: retries, 429 handling and error translation.

httpx errors become ``ProviderUnavailable`` (or ``RateLimited`` / ``AuthenticationFailed``) and
undecodable bodies ``BadSignalData``, here and only here. Headers are never logged: they
carry tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import AuthenticationFailed, BadSignalData, ProviderUnavailable, RateLimited
from .retry import RetryPolicy, parse_retry_after

__all__ = ["JsonClient"]

log = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class JsonClient:
    """GET JSON from ``base_url`` with retries; owns an ``httpx.AsyncClient`` unless given one."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.retry = retry or RetryPolicy()
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
    ) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        last_error: Exception | None = None
        retry_after: float | None = None
        for attempt in range(self.retry.attempts):
            retry_after = None
            try:
                response = await self._client.get(url, params=params, headers=headers, auth=auth)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last_error = exc
                log.info("%s: GET %s failed (%s), attempt %d", self.name, path, type(exc).__name__, attempt + 1)
            else:
                if response.status_code in (401, 403):
                    raise AuthenticationFailed(f"{self.name}: {path} refused our credentials (HTTP {response.status_code})")
                if response.status_code in _RETRYABLE_STATUS:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    last_error = httpx.HTTPStatusError(
                        f"HTTP {response.status_code}", request=response.request, response=response
                    )
                    log.info("%s: GET %s -> HTTP %d, attempt %d", self.name, path, response.status_code, attempt + 1)
                elif response.status_code >= 400:
                    raise ProviderUnavailable(
                        f"{self.name}: GET {path} -> HTTP {response.status_code}: {response.text[:200]}"
                    )
                else:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise BadSignalData(f"{self.name}: {path} did not return JSON") from exc
            if attempt + 1 < self.retry.attempts:
                await self.retry.sleep(self.retry.delay_for(attempt, retry_after))
        assert last_error is not None
        if isinstance(last_error, httpx.HTTPStatusError) and last_error.response.status_code == 429:
            raise RateLimited(
                f"{self.name}: rate limited on {path} after {self.retry.attempts} attempts", retry_after=retry_after
            ) from last_error
        raise ProviderUnavailable(
            f"{self.name}: GET {path} failed after {self.retry.attempts} attempts: {last_error}"
        ) from last_error
