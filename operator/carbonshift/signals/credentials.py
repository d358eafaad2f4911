"""Reading provider credentials from Kubernetes Secrets, without ever logging them.

``read_secret_key`` is the one function that reads a Secret, through a ``SecretGetter`` (any
``(namespace, name) -> Secret as JSON`` coroutine function, such as the operator's ``KubeApi.get``
on the Secret's path): a slow API server must never stall the event loop. ``resolve_secrets``
reads the keys a provider needs before it is built; ``SecretReader`` is the (synchronous)
protocol the factory takes for keys already read, so tests and offline demos pass a dict-backed reader.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import SignalConfigError

__all__ = ["SecretGetter", "SecretReader", "SecretSource", "KubernetesSecretReader", "StaticSecretReader", "Redacted",
           "read_secret_key", "resolve_secrets", "secret_ref"]

# (namespace, name) -> the Secret as the API returns it (JSON: ``data`` base64, maybe ``stringData``).
SecretGetter = Callable[[str, str], Awaitable[Mapping[str, Any]]]


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
    """Anything that can return one key of a Secret already read."""

    def read(self, name: str, namespace: str, key: str) -> str: ...


class SecretSource(Protocol):
    """Anything that can read one key of a Secret (from the API server: asynchronously)."""

    async def read(self, name: str, namespace: str, key: str) -> str: ...


async def read_secret_key(get_secret: SecretGetter, name: str, namespace: str, key: str) -> str:
    """One decoded key of a Secret; errors name the Secret and key, never the value."""
    try:
        secret = await get_secret(namespace, name)
    except Exception as exc:  # KubeError, connection errors, ...
        raise SignalConfigError(f"cannot read Secret {namespace}/{name}: {type(exc).__name__}") from exc
    if not isinstance(secret, Mapping):
        raise SignalConfigError(f"cannot read Secret {namespace}/{name}: not a Secret object")
    data = secret.get("data") or {}
    string_data = secret.get("stringData") or {}
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
    """``SecretSource`` backed by a ``SecretGetter`` (e.g. the hub's GET)."""

    get_secret: SecretGetter

    async def read(self, name: str, namespace: str, key: str) -> str:
        return await read_secret_key(self.get_secret, name, namespace, key)


async def resolve_secrets(source: SecretSource, refs: Iterable[tuple[str, str, str]]) -> StaticSecretReader:
    """The keys ``refs`` (``(name, namespace, key)``) read from ``source``, for ``build_provider``;
    the first that cannot be read raises its ``SignalConfigError``."""
    values: dict[tuple[str, str], dict[str, str]] = {}
    for name, namespace, key in refs:
        values.setdefault((namespace, name), {})[key] = await source.read(name, namespace, key)
    return StaticSecretReader(values)


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
