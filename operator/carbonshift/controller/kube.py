"""A small asyncio wrapper over the Kubernetes client: raw JSON in and out, one error tree.

The official client is synchronous and slow at turning JSON into model objects, so calls run in
a thread pool and bodies stay plain dicts. Library errors are translated once, here.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from typing import Any

import urllib3
from kubernetes import client as k8s

REQUEST_TIMEOUT = (3.0, 15.0)  # connect, read (seconds)


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


class KubeApi:
    """One API server. ``request`` returns the decoded JSON body (or None for an empty one)."""

    def __init__(self, api_client: k8s.ApiClient, executor: Executor, name: str = "hub") -> None:
        self.api_client = api_client
        self.executor = executor
        self.name = name
        # Fail fast on unreachable servers instead of urllib3's default retries.
        api_client.configuration.retries = 0

    def request_sync(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                     content_type: str = "application/json") -> Any:
        try:
            response = self.api_client.call_api(
                path, method, query_params=list((query or {}).items()),
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body, auth_settings=["BearerToken"], _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except k8s.ApiException as exc:
            message = exc.reason or ""
            try:
                message = json.loads(exc.body or "{}").get("message") or message
            except (ValueError, AttributeError):
                pass
            raise KubeError(int(exc.status or 0), f"{self.name}: {method} {path}: {message}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(0, f"{self.name}: {method} {path}: unreachable ({type(exc).__name__})") from exc
        data = response[0].data
        if not data:
            return None
        if "json" not in (response[0].headers.get("Content-Type") or ""):
            return data.decode(errors="replace")  # e.g. /readyz answers "ok"
        return json.loads(data)

    async def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                      content_type: str = "application/json") -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, lambda: self.request_sync(method, path, body, query, content_type))

    async def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return await self.request("GET", path, query=query)

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> Any:
        return await self.request("PATCH", path, patch, content_type="application/merge-patch+json")


CARBONSHIFT_API = "/apis/carbonshift.io/v1alpha1"


def caj_path(namespace: str, name: str = "", sub: str = "") -> str:
    path = f"{CARBONSHIFT_API}/namespaces/{namespace}/carbonawarejobs"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


def job_path(namespace: str, name: str = "") -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs" + (f"/{name}" if name else "")
