"""Fixtures for the Kueue tests: Kueue v0.17.0 itself on the local plane (hub = MultiKueue manager,
eu-de/eu-gb/us-ca = workers) and an operator with the Kueue rooms on (helpers: kueue_support.py)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from kueue import KueuePlane  # hack/kueue.py (tests/conftest.py puts hack/ on sys.path)
from kueue_support import KueueEnv, start_operator


@pytest.fixture(scope="module")
def kueue_env(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KueueEnv]:
    plane = control_plane.plane
    kueue = KueuePlane(plane)
    already = bool(kueue.running())
    kueue.up()  # builds Kueue once (cached under ~/.cache/carbonshift), else a few seconds
    env = KueueEnv(control_plane, kueue)
    env.register_members()
    env.operator = start_operator(control_plane, tmp_path_factory.mktemp("kueue-operator"))
    yield env
    env.operator.kill(signal.SIGTERM)  # the one running now: tests restart it
    if os.environ.get("CARBONSHIFT_SHOW_OPERATOR_LOG"):
        print(env.operator.log_tail(200), file=sys.stderr)
    env.cleanup()
    if not already:
        kueue.down()
