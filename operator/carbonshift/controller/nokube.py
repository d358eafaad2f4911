"""Keeps the official ``kubernetes`` client out of the operator process where it happens to be installed.

It is not a dependency of the operator, and the image does not have it: there this is a no-op.
Development and test venvs do have it (the tests' own client and the benchmarks use it), and Kopf
imports it opportunistically when it is importable: its model types at ``import kopf``
(kopf._cogs.helpers.thirdparty) and ``import kubernetes`` when its default handler registry is
created (the first ``@kopf.on...``), registering a fallback login through it. That login never
runs (handlers.login is a regular handler, which wins), but the import costs about 65 MB RSS, so
the operator under test would not be the operator users run (tests/operator/test_validation_memory.py
measures its memory). The package is hidden only while Kopf and the handlers are imported; code
that imports it later, or had imported it before, is unaffected.
tests/operator/test_kubeconfig.py checks that the operator loads no ``kubernetes``, and
tests/image/test_optional_dependencies.py that it logs in only through its own handler.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

HIDDEN = ("kubernetes", "kubernetes_asyncio")


class _Hider(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.split(".", 1)[0] in HIDDEN:
            # Exactly what Kopf sees when the package is not installed.
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by carbonshift)", name=fullname)
        return None


@contextmanager
def kubernetes_hidden() -> Iterator[None]:
    """Within this block, importing ``kubernetes`` fails as if it were not installed."""
    hider = _Hider()
    sys.meta_path.insert(0, hider)
    try:
        yield
    finally:
        sys.meta_path.remove(hider)
