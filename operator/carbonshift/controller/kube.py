"""A small asyncio Kubernetes API client on aiohttp: raw JSON in and out, one error tree.

The operator used the official client before: synchronous (a thread pool that capped concurrent
calls), slow at building model objects, and about 65 MB of imports. This speaks plain HTTP to
the API server with one pooled aiohttp session per server; bodies stay plain dicts and errors are
translated once, here. Connection details come from kubeconfig.py; tokens of ``exec`` plugins
from execplugin.py (one run shared by all requests, re-run before expiry and after a 401).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import aiohttp

from carbonshift.controller.execplugin import ExecCredentials, ExecError, ExecToken
from carbonshift.controller.kubeconfig import Connection, KubeconfigError

log = logging.getLogger(__name__)

# Connect, read (seconds). Both are per socket operation, like urllib3's timeouts were: a total
# timeout would also count the wait for a free pooled connection under load and turn a busy
# operator into "unreachable" members, and large LISTs may legitimately take long to stream.
REQUEST_TIMEOUT = (3.0, 15.0)
# Concurrent connections per API server (the old client's thread pool allowed 16 calls at once).
DEFAULT_MAX_CONNECTIONS = 64
# client-go re-reads token files every minute; the kubelet refreshes projected tokens far earlier.
TOKEN_REREAD_S = 60.0
# A session replaced because an exec plugin gave a new client certificate is closed this much
# later, so requests still using it finish.
RETIRE_SESSION_AFTER_S = 30.0


class KubeError(Exception):
    """A Kubernetes API call failed. ``status`` is the HTTP status, 0 when unreachable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def unreachable(self) -> bool:
        return self.status == 0


def _params(query: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query parameters as strings (booleans the way the API expects them, lists repeated)."""
    out: list[tuple[str, str]] = []
    for key, value in (query or {}).items():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if item is None:
                continue
            out.append((key, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    return out


class KubeApi:
    """One API server. ``request`` returns the decoded JSON body (or None for an empty one).

    May be constructed before the event loop runs: the aiohttp session is created on first use
    inside the running loop. ``aclose()`` releases it.
    """

    def __init__(self, connection: Connection, name: str = "hub", *,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.connection = connection
        self.name = name
        self.max_connections = max_connections
        self._base = connection.server.rstrip("/")
        # Built now, so a bad certificate fails at construction (a KubeconfigError), not per call.
        self._ssl: ssl.SSLContext | None = connection.ssl_context() if self._base.startswith("https:") else None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token = connection.token
        self._token_read_at: float | None = None
        # Shared by every request of this client and by Kopf's login (for the hub).
        self.exec_credentials = ExecCredentials(connection.exec_config) if connection.exec_config else None
        self._exec_pair: tuple[str, str] | None = None  # the exec plugin's client certificate in self._ssl
        self._retiring: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"KubeApi({self.name!r}, {self._base!r})"

    # -- credentials ---------------------------------------------------------------------------

    def _bearer(self) -> str | None:
        """The bearer token; a token file is re-read every TOKEN_REREAD_S (rotated tokens)."""
        path = self.connection.token_file
        if path is None:
            return self._token
        now = time.monotonic()
        if self._token_read_at is None or now - self._token_read_at >= TOKEN_REREAD_S:
            try:
                token = path.read_text(encoding="utf-8").strip()
            except OSError:
                if self._token is None:
                    raise
                log.warning("%s: cannot re-read token file %s; using the previous token", self.name, path)
            else:
                self._token = token or self._token
            self._token_read_at = now
        return self._token

    def _what(self, method: str, path: str) -> str:
        return f"{self.name}: {method} {path}" if path else f"{self.name}: {method}"

    async def _auth_token(self, method: str, path: str) -> str | None:
        if self.exec_credentials is not None:
            try:
                answer = await self.exec_credentials.token()
            except ExecError as exc:
                raise KubeError(401, f"{self._what(method, path)}: {exc}") from None
            self._use_exec_certificate(answer, method, path)
            return answer.token
        return self._static_token(method, path)

    def _use_exec_certificate(self, answer: ExecToken, method: str, path: str) -> None:
        """A client certificate from the plugin goes into the TLS context: a new one means a new
        context and new connections (the old session is closed once requests on it had time to end)."""
        pair = (answer.client_cert, answer.client_key) if answer.client_cert and answer.client_key else None
        if pair == self._exec_pair or pair is None or not self._base.startswith("https:"):
            return
        try:
            context = replace(self.connection, client_cert_data=pair[0], client_key_data=pair[1]).ssl_context()
        except KubeconfigError as exc:
            plugin = self.connection.exec_config.command if self.connection.exec_config else "?"
            raise KubeError(401, f"{self._what(method, path)}: exec plugin {plugin}: {exc}") from None
        self._ssl, self._exec_pair = context, pair
        old, self._session = self._session, None
        if old is not None and not old.closed:
            self._retire(old)

    def _retire(self, session: aiohttp.ClientSession) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # called from synchronous code: the session closes with its loop
        if loop is not self._loop:
            return

        async def close_later() -> None:
            try:
                await asyncio.sleep(RETIRE_SESSION_AFTER_S)
            finally:
                await session.close()

        task = loop.create_task(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _static_token(self, method: str, path: str) -> str | None:
        try:
            return self._bearer()
        except OSError as exc:
            raise KubeError(401, f"{self._what(method, path)}: cannot read token file "
                                 f"({type(exc).__name__})") from None

    def _refused(self, token: str | None) -> bool:
        """After a 401 with ``token``: True if another token may now be had (worth one retry)."""
        if self.exec_credentials is not None:
            self.exec_credentials.invalidate(token)
            return True
        if self.connection.token_file is not None:
            self._token_read_at = None  # re-read the file now, it may have been rotated
            try:
                return self._bearer() != token
            except OSError:
                return False
        return False

    async def login_token(self, refused: str | None = None, *, again: bool = False
                          ) -> tuple[str | None, datetime | None]:
        """A token for another client of this server (Kopf's watches) and when to ask again; the
        TLS context to use with it is ``ssl_context`` (an exec plugin may give a client certificate).

        ``again``: that client logs in again, so what it had (``refused``: its token, None for a
        certificate only) was answered 401 or expired; it is dropped, never handed out again.
        """
        if again or refused is not None:
            self._refused(refused)
        token = await self._auth_token("login", "")
        cached = self.exec_credentials.cached() if self.exec_credentials is not None else None
        return token, cached.refresh_by if cached is not None else None

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (CA, tls-server-name, client certificate); None for plain http."""
        return self._ssl

    @staticmethod
    def _headers(token: str | None, content_type: str | None, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    # -- responses -----------------------------------------------------------------------------

    def _result(self, method: str, path: str, status: int, reason: str | None, content_type: str,
                payload: bytes) -> Any:
        if status >= 300:
            message = reason or ""
            try:
                message = json.loads(payload or b"{}").get("message") or message
            except (ValueError, AttributeError):
                pass
            raise KubeError(status, f"{self.name}: {method} {path}: {message}")
        if not payload:
            return None
        if "json" not in content_type:
            return payload.decode(errors="replace")  # e.g. /readyz answers "ok"
        return json.loads(payload)

    def _unreachable(self, method: str, path: str, exc: BaseException) -> KubeError:
        return KubeError(0, f"{self.name}: {method} {path}: unreachable ({type(exc).__name__})")

    # -- asyncio -------------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # A session belongs to the loop it was made in; a new loop (tests) needs a new one.
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0,
                                             ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=REQUEST_TIMEOUT[0],
                                              sock_read=REQUEST_TIMEOUT[1]),
                # No gzip: it costs CPU on both ends and the old client never asked for it.
                skip_auto_headers=("Accept-Encoding",),
                headers={"User-Agent": "carbonshift"},
            )
            self._loop = loop
        return self._session

    async def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                      content_type: str = "application/json", accept: str = "application/json") -> Any:
        data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        for attempt in (1, 2):
            token = await self._auth_token(method, path)
            headers = self._headers(token, content_type if body is not None else None, accept)
            session = self._client()  # after the credentials: a new exec certificate means a new session
            try:
                async with session.request(method, self._base + path, params=_params(query) or None, data=data,
                                           headers=headers, allow_redirects=False) as response:
                    payload = await response.read()
                    status, reason = response.status, response.reason
                    response_type = response.headers.get("Content-Type", "")
            except (aiohttp.ClientError, OSError) as exc:  # refused, reset, TLS, timeouts (TimeoutError is an OSError)
                raise self._unreachable(method, path, exc) from exc
            # A 401 changed nothing on the server: retry once if there is another token to try.
            if not (status == 401 and attempt == 1 and self._refused(token)):
                break
        return self._result(method, path, status, reason, response_type, payload)

    async def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return await self.request("GET", path, query=query)

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> Any:
        return await self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    async def watch(self, path: str, query: dict[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        """The decoded events of a WATCH on ``path`` (``watch=true`` is implied), until the server
        ends the stream (``timeoutSeconds``). Errors are KubeErrors, as for ``request``."""
        params = _params({"watch": "true", **(query or {})})
        server_timeout = (query or {}).get("timeoutSeconds")
        # A quiet watch is normal: wait for data as long as the server may keep the stream open.
        timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=REQUEST_TIMEOUT[0],
                                        sock_read=float(server_timeout) + REQUEST_TIMEOUT[1] if server_timeout else None)
        try:
            for attempt in (1, 2):
                token = await self._auth_token("GET", path)
                session = self._client()
                async with session.get(self._base + path, params=params, headers=self._headers(token, None),
                                       timeout=timeout, allow_redirects=False) as response:
                    if response.status == 401 and attempt == 1 and self._refused(token):
                        continue
                    if response.status >= 300:
                        self._result("GET", path, response.status, response.reason,
                                     response.headers.get("Content-Type", ""), await response.read())
                    # Split lines ourselves: aiohttp's readline refuses lines over 128 KiB (large Jobs).
                    buffer = bytearray()
                    async for chunk in response.content.iter_any():
                        buffer.extend(chunk)
                        while (end := buffer.find(b"\n")) >= 0:
                            line = bytes(buffer[:end])
                            del buffer[:end + 1]
                            if line.strip():
                                yield json.loads(line)
                    if buffer.strip():
                        yield json.loads(bytes(buffer))
                    return
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable("GET", path, exc) from exc

    async def aclose(self) -> None:
        """Closes the pooled connections (a later request opens a new session)."""
        for task in list(self._retiring):
            task.cancel()  # closes its session at once
        await asyncio.gather(*self._retiring, return_exceptions=True)
        session, self._session = self._session, None
        if session is None or session.closed:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:  # a session of a finished loop cannot be closed from another one
            await session.close()
