"""The operator image leaves out pandas and scipy (the `sim` and `lp` extras, ~200 MB): what needs
them says which extra to install instead of failing with a bare ImportError."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

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


# ---- the runtime dependencies are exactly what the operator imports ---------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "operator" / "carbonshift"
#: Distribution name (as in pyproject.toml) -> the module it provides.
MODULE_OF = {"PyYAML": "yaml", "prometheus-client": "prometheus_client"}


def _requirement_modules(requirements: list[str]) -> set[str]:
    names = {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0] for r in requirements if not r.startswith("carbonshift")}
    return {MODULE_OF.get(n, n.replace("-", "_").lower()) for n in names}


def _third_party_imports(files: list[Path]) -> set[str]:
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"carbonshift"}


def test_runtime_dependencies_are_exactly_what_the_operator_imports() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    files = sorted(PACKAGE.rglob("*.py"))
    # pandas (carbonshift simulate) and scipy (the LP planner) are the sim and lp extras.
    optional = {p for p in files if p.parent.name == "sim"} | {PACKAGE / "core" / "flow.py"}
    assert _third_party_imports([p for p in files if p not in optional]) == _requirement_modules(
        project["dependencies"])
    assert _third_party_imports(sorted(optional)) - _requirement_modules(project["dependencies"]) == (
        _requirement_modules(extras["sim"]) | _requirement_modules(extras["lp"]))
    assert "kubernetes" not in _requirement_modules(project["dependencies"])


def test_kopf_in_the_operator_logs_in_only_through_the_operator_s_own_handler() -> None:
    """The tests' venv has the official client (the image has not). Kopf would register a fallback
    login through it (never used while handlers.login exists) and import it (~65 MB RSS);
    controller/nokube.py hides it, so the operator under test is the image's operator.
    tests/operator/test_kubeconfig.py checks that the process imports no ``kubernetes``."""
    probe = ("import carbonshift.controller.command, kopf; from kopf._core.intents.causes import Activity; "
             "print(sorted(h.id for h in kopf.get_default_registry()._activities.get_handlers(Activity.AUTHENTICATION)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "operator")}).stdout
    assert importlib.util.find_spec("kubernetes") is not None  # installed here, as in every dev venv
    assert out.strip() == "['login']"
