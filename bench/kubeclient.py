"""A tiny, thread-safe JSON client for the bench (httpx over the kubeconfig's server, CA and token).

Why this module exists: the bench creates thousands of objects with a fixed client concurrency
and must count its own requests, so it uses one small client for CarbonAwareJobs and plain Jobs
alike, with no model (de)serialisation in the way.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client as k8s
from kubernetes import config as k8s_config


class Kube:
    """One API server, reached with the kubeconfig's credentials; counts the requests it sends."""

    def __init__(self, kubeconfig: Path, concurrency: int = 8) -> None:
        cfg = k8s.Configuration()
        k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        token = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
        if token:
            headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
        cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file else None
        self.base = cfg.host
        self.http = httpx.Client(base_url=cfg.host, headers=headers, verify=cfg.ssl_ca_cert or True, cert=cert,
                                 timeout=httpx.Timeout(30.0),
                                 limits=httpx.Limits(max_connections=concurrency + 4,
                                                     max_keepalive_connections=concurrency + 4))
        self._verify = cfg.ssl_ca_cert or True
        self._headers = headers
        self._cert = cert
        self.requests = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.requests += 1

    def request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
                content_type: str | None = None) -> Any:
        self._count()
        headers = {"Content-Type": content_type} if content_type else None
        resp = self.http.request(method, path, content=json.dumps(body) if body is not None else None, params=params,
                                 headers=headers)
        if resp.status_code >= 400 and not (method == "POST" and resp.status_code == 409):
            raise RuntimeError(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:300]}")
        return resp.json() if resp.content and resp.headers.get("content-type", "").startswith("application/json") else resp.text

    def raw(self, path: str) -> str:
        self._count()
        resp = self.http.get(path, headers={"Accept": "text/plain"})
        resp.raise_for_status()
        return resp.text

    def watch(self, path: str, resource_version: str, on_event: Callable[[dict[str, Any]], None],
              stop: threading.Event, timeout_s: float) -> None:
        """Streams watch events of ``path`` to ``on_event`` until ``stop`` or ``timeout_s``; reconnects."""
        end = time.monotonic() + timeout_s
        rv = resource_version
        with httpx.Client(base_url=self.base, headers=self._headers, verify=self._verify, cert=self._cert,
                          timeout=httpx.Timeout(10.0, read=5.0)) as client:
            while not stop.is_set() and time.monotonic() < end:
                self._count()
                try:
                    with client.stream("GET", path, params={"watch": "1", "resourceVersion": rv,
                                                            "allowWatchBookmarks": "true",
                                                            "timeoutSeconds": "60"}) as resp:
                        for line in _lines(resp.iter_lines(), stop):
                            event = json.loads(line)
                            obj = event.get("object") or {}
                            rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                            if event.get("type") in ("ADDED", "MODIFIED"):
                                on_event(obj)
                except httpx.ReadTimeout:
                    continue
                except httpx.HTTPError:
                    time.sleep(0.2)


def _lines(lines: Iterator[str], stop: threading.Event) -> Iterator[str]:
    for line in lines:
        if stop.is_set():
            return
        if line.strip():
            yield line


def metric_sums(text: str, name: str, by: tuple[str, ...] = ()) -> dict[tuple[str, ...], float]:
    """Sums a Prometheus text-format counter over all series, grouped by the ``by`` labels."""
    out: dict[tuple[str, ...], float] = {}
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head[len(name):len(name) + 1] not in ("{", " ", ""):
            continue
        labels: dict[str, str] = {}
        if "{" in head:
            for part in _split_labels(head[head.index("{") + 1: head.rindex("}")]):
                k, _, v = part.partition("=")
                labels[k] = v.strip('"')
        key = tuple(labels.get(b, "") for b in by)
        out[key] = out.get(key, 0.0) + float(value)
    return out


def _split_labels(text: str) -> list[str]:
    parts, cur, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts
