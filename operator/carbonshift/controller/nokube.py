"""Keeps the official ``kubernetes`` client out of the operator process.

Kopf imports it opportunistically whenever it is installed: its model types at ``import kopf``
(kopf._cogs.helpers.thirdparty) and a whole ``import kubernetes`` to probe for it when its
default handler registry is created (at the first ``@kopf.on...`` decorator). That alone costs
about 65 MB RSS, and nothing in the operator uses it (kube.py speaks HTTP itself). The package
stays installed for the tests and benchmarks, so it is hidden only while Kopf and the handlers
are imported; code that imports it later, or had imported it before, is unaffected.
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
