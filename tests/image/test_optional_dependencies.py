"""The operator image leaves out pandas and scipy (the `sim` and `lp` extras, ~200 MB): what needs
them says which extra to install instead of failing with a bare ImportError."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from carbonshift import cli
from carbonshift.core import Job, RegionSignals, plan_interruptible_lp


def _forget(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        monkeypatch.delitem(sys.modules, name)


def test_simulate_without_pandas_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _forget("carbonshift.sim", monkeypatch)
    monkeypatch.setitem(sys.modules, "pandas", None)  # what `import pandas` sees when it is not installed
    assert cli.main(["simulate"]) == 2
    assert "pip install 'carbonshift[sim]'" in capsys.readouterr().err


def test_the_lp_planner_without_scipy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    slot = timedelta(minutes=15)
    region = RegionSignals("a", t0, slot, np.full(8, 100.0))
    job = Job("j", t0, 2 * slot, t0 + 8 * slot, power_w=100.0, home_region="a", interruptible=True)
    for name in ("scipy", "scipy.sparse", "scipy.optimize"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ModuleNotFoundError, match=r"carbonshift\[lp\]"):
        plan_interruptible_lp([job], [region])
