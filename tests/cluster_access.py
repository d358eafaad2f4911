"""How tests reach a local control plane: a kubeconfig, kubectl and API clients per cluster.

Shared by the main fixture (tests/conftest.py) and the chaos suite's own control plane.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any


class ControlPlane:
    """What tests get: a kubeconfig, kubectl and an API client per cluster."""

    def __init__(self, plane: Any) -> None:  # a hack/localcluster.LocalControlPlane
        self.plane = plane
        self.names = tuple(spec.name for spec in plane.clusters)
        self._clients: dict[str, object] = {}

    def kubeconfig(self, name: str) -> Path:
        self.plane.spec(name)  # raises KeyError for an unknown cluster
        return self.plane.kubeconfig(name)

    def kubectl(self, name: str, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", f"--kubeconfig={self.kubeconfig(name)}", *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        return result

    def api_client(self, name: str):  # -> kubernetes.client.ApiClient
        from kubernetes import config

        if name not in self._clients:
            self._clients[name] = config.new_client_from_config(config_file=str(self.kubeconfig(name)))
        return self._clients[name]

    def custom(self, name: str = "hub"):  # -> kubernetes.client.CustomObjectsApi
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client(name))

    def core(self, name: str):  # -> kubernetes.client.CoreV1Api
        from kubernetes import client

        return client.CoreV1Api(self.api_client(name))

    def batch(self, name: str):  # -> kubernetes.client.BatchV1Api
        from kubernetes import client

        return client.BatchV1Api(self.api_client(name))
