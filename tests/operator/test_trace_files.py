"""Trace files (issue 12.11): a MemberCluster's `trace` path is a bundled name or a file in the admin's
data folder, and whatever a file holds never reaches what tenants read (job status, Events) nor the
MemberCluster status or the operator's log."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from operator_support import REGIONS, caj_manifest, member_manifest, wait_until

pytestmark = pytest.mark.cluster
SECRET = f"eyJhbGciOiJSUzI1NiJ9.SECRET-{uuid.uuid4().hex}"  # looks like a ServiceAccount token


def _member(control_plane: Any, name: str, path: str) -> None:
    manifest = member_manifest(name, "DE", REGIONS["eu-de"][1], None)
    manifest["spec"]["carbonSignal"] = {"provider": "trace", "trace": {"path": path}}
    manifest["spec"]["kubeconfigSecretRef"]["name"] = "member-eu-de"
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(manifest))


def _mc(control_plane: Any, name: str) -> dict[str, Any]:
    return json.loads(control_plane.kubectl("hub", "get", "mc", name, "-o", "json").stdout)


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def test_trace_files_stay_in_the_data_folder_and_never_leak(operator, hub, make_namespace, control_plane,
                                                           operator_data_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "token"
    outside.write_text(SECRET + "\n")
    (operator_data_dir / "token.csv").write_text(f"time,carbon_intensity\n{SECRET},1\n")  # in the folder, not a trace
    (operator_data_dir / "header.csv").write_text(f"{SECRET}\n")
    rows = [f"2022-01-{d:02d}T{h:02d}:00:00Z,{200 + 10 * h}" for d in range(1, 29) for h in range(24)]
    (operator_data_dir / "good.csv").write_text("\n".join(["time,carbon_intensity", *rows]) + "\n")
    members = {"eu-abs": str(outside), "eu-dots": f"../{outside.parent.name}/token", "eu-token": "token.csv",
               "eu-header": "header.csv", "eu-good": "good.csv"}
    for name, path in members.items():
        _member(control_plane, name, path)
    try:
        # Every member reports on its signal; the file in the folder is read, the others refused.
        wait_until(lambda: all(_condition(_mc(control_plane, m).get("status") or {}, "SignalsStale").get("status")
                               for m in members), what="every member's SignalsStale condition",
                   on_fail=operator.log_tail)
        wait_until(lambda: _condition(_mc(control_plane, "eu-good")["status"], "SignalsStale")["status"] == "False",
                   what="eu-good reads its file from the data folder", on_fail=operator.log_tail)
        for name in ("eu-abs", "eu-dots"):
            stale = _condition(_mc(control_plane, name)["status"], "SignalsStale")
            assert stale["status"] == "True" and "inside the operator's data folder" in stale["message"], stale
        ns = make_namespace("hub", "leak")
        hub.apply(ns, caj_manifest("job", regions=["eu-abs", "eu-dots", "eu-token", "eu-header"], max_delay="6h"))
        status = wait_until(lambda: (s := hub.status(ns, "job")).get("decision") and s, what="a decision",
                            on_fail=operator.log_tail)
        assert _condition(status, "SignalsStale")["status"] == "True"
        readable = [json.dumps(status), json.dumps(hub.events(ns, "job")), operator.log_tail(100_000),
                    *(json.dumps(_mc(control_plane, m)) for m in members)]
        assert not [text[:200] for text in readable if "SECRET" in text or SECRET[:20] in text]
    finally:
        for name in members:
            control_plane.kubectl("hub", "delete", "mc", name, check=False)
