"""``exec`` credential plugins (client.authentication.k8s.io v1 and v1beta1), as client-go runs them.

EKS (``aws eks get-token``), GKE (``gke-gcloud-auth-plugin``) and AKS (``kubelogin get-token``)
kubeconfigs all get their bearer token from such a program. This module runs it and keeps its
answer: one run is shared by every request (and by Kopf's login) until shortly before the
``expirationTimestamp`` it returned, and a request answered 401 drops that answer so the next
request runs the plugin again (client-go does the same).

Why not the official ``kubernetes`` package's ``ExecProvider`` (kubernetes 34, imported lazily): being
synchronous would be fine (the plugin runs in a worker thread here too), but it keeps no cache and
knows no expiry or 401 (its loader refreshes only through the synchronous client's
``refresh_api_key_hook``), decides "interactive" from whether the operator's own stdout is a
terminal and then hands the plugin the operator's stdin, ignores ``interactiveMode``, passes
``provideClusterInfo`` the raw kubeconfig cluster (file paths and ``extensions`` included) instead
of the ExecCredential ``Cluster`` shape, and its loader turns a failed plugin into a log line and
no credentials at all. What it would save (build an environment, parse a small JSON document) is
a few dozen lines; everything here would still be needed around it, plus 36 MB in the image.

The operator is not interactive: plugins run (in a worker thread) with stdin from /dev/null and
``spec.interactive`` false; ``interactiveMode: Always`` is refused when the kubeconfig is read. A
plugin's stderr goes to the operator's log (it may explain a failed login), never into status
messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from carbonshift.timefmt import parse_iso

__all__ = ["API_VERSIONS", "ExecConfig", "ExecCredentials", "ExecError", "ExecToken"]

log = logging.getLogger(__name__)

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
# A plugin that has not answered by then is killed (aws/gcloud answer within seconds).
RUN_TIMEOUT_S = 60.0
# A token is replaced this long before its expirationTimestamp (at most a fifth of its lifetime),
# so a request never leaves with a token that expires on the way.
REFRESH_BEFORE_S = 60.0
# After a failed run, callers get that failure for this long instead of a new run: an operator
# makes many requests a second, and each run of a cloud plugin is a call to its identity service.
FAILURE_HOLD_S = 5.0


class ExecError(Exception):
    """A plugin could not give a credential. The message names the plugin, never a credential."""


@dataclass(frozen=True)
class ExecConfig:
    """A kubeconfig user's ``exec`` section, validated (see kubeconfig.py), command resolved."""

    user: str  # the kubeconfig user's name, for messages
    api_version: str
    command: str  # an absolute path (looked up on PATH when the kubeconfig was read)
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # The ExecCredential ``spec.cluster`` (when provideClusterInfo is true), as JSON-ready data.
    cluster: Mapping[str, Any] | None = field(default=None, repr=False)
    server: str = ""  # the API server the token is for (for the log)

    def exec_info(self) -> str:
        """KUBERNETES_EXEC_INFO: what client-go tells a plugin about this call."""
        spec: dict[str, Any] = {"interactive": False}
        if self.cluster is not None:
            spec["cluster"] = dict(self.cluster)
        return json.dumps({"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec})

    def environment(self) -> dict[str, str]:
        # client-go: the operator's environment, then the kubeconfig's env entries, then the info.
        return {**os.environ, **dict(self.env), "KUBERNETES_EXEC_INFO": self.exec_info()}


@dataclass(frozen=True)
class ExecToken:
    """What a plugin answered: a bearer token, a client certificate, or both."""

    token: str | None = field(repr=False)
    expires_at: datetime | None  # UTC; None = valid until a 401 says otherwise
    refresh_at: float | None  # monotonic seconds; None = never by time
    refresh_by: datetime | None  # the same moment in UTC (for Kopf's credentials expiration)
    client_cert: str | None = field(default=None, repr=False)  # PEM
    client_key: str | None = field(default=None, repr=False)  # PEM


def _parse(config: ExecConfig, stdout: bytes, now: datetime) -> ExecToken:
    what = f"exec plugin {config.command} (user {config.user!r})"
    try:
        answer = json.loads(stdout)
    except ValueError:
        raise ExecError(f"{what} did not print an ExecCredential (not JSON)") from None
    if not isinstance(answer, dict) or answer.get("kind") != "ExecCredential":
        raise ExecError(f"{what} did not print an ExecCredential")
    if answer.get("apiVersion") != config.api_version:
        raise ExecError(f"{what} answered apiVersion {answer.get('apiVersion')!r}, "
                        f"the kubeconfig asked for {config.api_version}")
    status = answer.get("status")
    if not isinstance(status, dict):
        raise ExecError(f"{what}: the ExecCredential has no status")
    cert, key = status.get("clientCertificateData") or None, status.get("clientKeyData") or None
    if bool(cert) != bool(key):
        raise ExecError(f"{what}: status.clientCertificateData and status.clientKeyData must come together")
    token = status.get("token") or None
    if not token and not cert:
        raise ExecError(f"{what}: the ExecCredential has neither status.token nor status.clientCertificateData")
    if not all(value is None or isinstance(value, str) for value in (token, cert, key)):
        raise ExecError(f"{what}: status.token, clientCertificateData and clientKeyData must be strings")
    expires_at = refresh_by = None
    refresh_at = None
    if status.get("expirationTimestamp"):
        try:
            expires_at = parse_iso(str(status["expirationTimestamp"]))
        except ValueError:
            raise ExecError(f"{what}: status.expirationTimestamp is not an RFC 3339 time") from None
        lifetime = (expires_at - now).total_seconds()
        early = min(REFRESH_BEFORE_S, max(lifetime, 0.0) / 5)
        refresh_at = time.monotonic() + lifetime - early
        refresh_by = expires_at - timedelta(seconds=early)
    return ExecToken(token=token, expires_at=expires_at, refresh_at=refresh_at, refresh_by=refresh_by,
                     client_cert=cert, client_key=key)


def _failed(config: ExecConfig, returncode: int, stderr: bytes) -> ExecError:
    text = stderr.decode(errors="replace").strip()
    if text:
        log.warning("exec plugin %s (user %r) exited with %d: %s", config.command, config.user, returncode,
                    text[-2000:])
    return ExecError(f"exec plugin {config.command} (user {config.user!r}) exited with {returncode}"
                     + (" (its stderr is in the operator log)" if text else ""))


class ExecCredentials:
    """The token of one ``exec`` user, shared by all requests of one client (and Kopf's login).

    ``token()`` runs the plugin when there is no answer yet or the last one is about to expire;
    concurrent callers wait for the same run. ``invalidate(token)`` after a 401 drops that token
    (only if it is still the current one: forty requests failing with the same token cause one run).
    A failed run is answered for FAILURE_HOLD_S without running the plugin again.
    """

    def __init__(self, config: ExecConfig) -> None:
        self.config = config
        self.runs = 0  # plugin invocations, for logs and tests
        self._current: ExecToken | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._failure: tuple[float, ExecError] | None = None  # (monotonic until, error)

    def _valid(self) -> ExecToken | None:
        current = self._current
        if current is None or (current.refresh_at is not None and time.monotonic() >= current.refresh_at):
            return None
        return current

    def cached(self) -> ExecToken | None:
        return self._valid()

    def invalidate(self, token: str | None) -> None:
        """After a 401 of a request made with ``token`` (None: a certificate-only answer)."""
        if self._current is not None and self._current.token == token:
            self._current = None

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:  # a lock belongs to one loop (tests use several)
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def token(self) -> ExecToken:
        if (current := self._valid()) is not None:
            return current
        async with self._loop_lock():
            if (current := self._valid()) is not None:  # another caller ran it meanwhile
                return current
            self._current = await asyncio.to_thread(self._run)
            return self._current

    def _run(self) -> ExecToken:
        if self._failure is not None and time.monotonic() < self._failure[0]:
            raise self._failure[1]
        try:
            answer = self._run_plugin()
        except ExecError as exc:
            self._failure = (time.monotonic() + FAILURE_HOLD_S, exc)
            raise
        self._failure = None
        return answer

    def _run_plugin(self) -> ExecToken:
        # Blocking: ``token()`` runs it in a worker thread. A thread rather than an asyncio
        # subprocess: a caller cancelled mid-run (shutdown, a timed-out request) leaves the run to
        # finish and be cached, where a cancelled asyncio subprocess could hang the loop's shutdown.
        config = self.config
        self.runs += 1
        started = datetime.now(timezone.utc)
        try:
            done = subprocess.run([config.command, *config.args], stdin=subprocess.DEVNULL, capture_output=True,
                                  env=config.environment(), timeout=RUN_TIMEOUT_S, check=False,
                                  start_new_session=True)
        except subprocess.TimeoutExpired:
            raise ExecError(f"exec plugin {config.command} (user {config.user!r}) did not answer within "
                            f"{RUN_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise ExecError(f"exec plugin {config.command} (user {config.user!r}) cannot be started "
                            f"({type(exc).__name__})") from None
        if done.returncode != 0:
            raise _failed(config, done.returncode, done.stderr)
        if done.stderr.strip():
            log.debug("exec plugin %s (user %r) wrote to stderr: %s", config.command, config.user,
                      done.stderr.decode(errors="replace")[-2000:])
        answer = _parse(config, done.stdout, started)
        log.info("exec plugin %s (user %r, server %s) gave %s%s", config.command, config.user, config.server,
                 "a token" if answer.token else "a client certificate",
                 f" valid until {answer.expires_at.isoformat()}" if answer.expires_at else "")
        return answer
