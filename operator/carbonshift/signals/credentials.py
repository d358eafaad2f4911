"""Reading provider credentials from Kubernetes Secrets, without ever logging them.

``read_secret_key`` is the one function that touches the Kubernetes API; ``SecretReader`` is
the protocol the factory takes, so tests and offline demos can pass a dict-backed reader.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .errors import SignalConfigError

if TYPE_CHECKING:  # the kubernetes client is heavy; only its type is needed here
    from kubernetes.client import CoreV1Api

__all__ = ["SecretReader", "KubernetesSecretReader", "StaticSecretReader", "Redacted", "read_secret_key", "secret_ref"]


class Redacted:
    """A string that never shows itself in ``repr``/``str`` (so it cannot leak into logs)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Redacted('***')"

    __str__ = __repr__


class SecretReader(Protocol):
    """Anything that can return one key of a Secret."""

    def read(self, name: str, namespace: str, key: str) -> str: ...


def read_secret_key(api: CoreV1Api, name: str, namespace: str, key: str) -> str:
    """One decoded key of a Secret; errors name the Secret and key, never the value."""
    try:
        secret = api.read_namespaced_secret(name=name, namespace=namespace)
    except Exception as exc:  # kubernetes.client.ApiException, urllib3 errors, ...
        raise SignalConfigError(f"cannot read Secret {namespace}/{name}: {type(exc).__name__}") from exc
    data = secret.data or {}
    string_data = getattr(secret, "string_data", None) or {}
    if key in data:
        try:
            return base64.b64decode(data[key], validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise SignalConfigError(f"Secret {namespace}/{name} key {key!r} is not valid base64 text") from exc
    if key in string_data:
        return str(string_data[key]).strip()
    raise SignalConfigError(f"Secret {namespace}/{name} has no key {key!r}")


@dataclass
class KubernetesSecretReader:
    """``SecretReader`` backed by a ``CoreV1Api``."""

    api: CoreV1Api

    def read(self, name: str, namespace: str, key: str) -> str:
        return read_secret_key(self.api, name, namespace, key)


@dataclass
class StaticSecretReader:
    """``SecretReader`` backed by ``{(namespace, name): {key: value}}`` (tests, local demo)."""

    secrets: Mapping[tuple[str, str], Mapping[str, str]]

    def read(self, name: str, namespace: str, key: str) -> str:
        try:
            return self.secrets[(namespace, name)][key]
        except KeyError as exc:
            raise SignalConfigError(f"Secret {namespace}/{name} key {key!r} not found") from exc

    def __repr__(self) -> str:
        return f"StaticSecretReader({sorted(self.secrets)})"


def secret_ref(block: Mapping[str, Any], field: str, default_key: str) -> tuple[str, str, str]:
    """``(name, namespace, key)`` from a ``{name, namespace, key}`` reference in ``block``."""
    ref = block.get(field)
    if not isinstance(ref, Mapping) or not ref.get("name"):
        raise SignalConfigError(f"{field}.name is required")
    return str(ref["name"]), str(ref.get("namespace") or "carbonshift-system"), str(ref.get("key") or default_key)
