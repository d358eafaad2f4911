"""docs/quickstart.md, end to end, with only the commands the page shows.

Every ```bash block of the page runs in order (bash -euo pipefail) in one folder, as a user
would run them: `carbonshift` there is this checkout (the clone), `eu-de.kubeconfig` is the
local member's kubeconfig, KUBECONFIG points at the local hub, helm and kubectl are on PATH.
YAML blocks are saved under the file name on their first line. The page's own comments say which
blocks are not run (clone, push to a registry, ...) and after which one the test plays the
kubelet's part: kwok nodes run no containers, so the operator Pod that the packaged chart's
Deployment creates is run as a container of the locally built image (tests/image/kubelet.py).
The job must be delayed by its decision and then run in the member cluster.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from image_support import HUB, REPO_ROOT, Helm
from kubelet import Kubelet, RunningPod

pytestmark = [pytest.mark.cluster, pytest.mark.container]
PAGE = REPO_ROOT / "docs" / "quickstart.md"
MEMBER = "eu-de"
NAMESPACE = "carbonshift-system"
RELEASE = "carbonshift"
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!-- quickstart-test: (\w+)")


@dataclass(frozen=True)
class Block:
    kind: str  # bash | yaml | ...
    text: str
    marker: str | None  # skip | kubelet | None
    line: int


def page_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    lines = text.splitlines()
    marker: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := _MARKER.match(line):
            marker = m.group(1)
        elif m := _FENCE.match(line):
            start = i
            body = []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append(Block(m.group(1), "\n".join(body) + "\n", marker, start + 1))
            marker = None
        elif line.strip() and not line.startswith("<!--") and marker is not None and not _in_comment(lines, i):
            marker = None  # a marker applies to the very next block only
        i += 1
    return blocks


def _in_comment(lines: list[str], i: int) -> bool:
    before = "\n".join(lines[: i + 1])
    return before.rfind("<!--") > before.rfind("-->")


def test_the_page_is_parsed_as_the_test_expects() -> None:
    blocks = page_blocks(PAGE.read_text())
    bash = [b for b in blocks if b.kind == "bash"]
    assert [b.marker for b in bash].count("kubelet") == 1
    assert any("helm install" in b.text and "./carbonshift-" in b.text for b in bash if b.marker == "kubelet")
    files = [b.text.splitlines()[0] for b in blocks if b.kind == "yaml"]
    assert files == ["# membercluster-eu-de.yaml", "# carbonpolicy-default.yaml", "# report.yaml"]


class Hub:
    def __init__(self, control_plane: Any) -> None:
        self.cp = control_plane

    def kubectl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl(HUB, *args, check=check)

    def get(self, *args: str) -> dict[str, Any] | None:
        out = self.kubectl("get", *args, "-o", "json")
        return json.loads(out.stdout) if out.returncode == 0 else None


@pytest.fixture
def clean_hub(control_plane: Any, helm: Helm) -> Iterator[Hub]:
    """The hub as a new user's: none of the page's names taken. What other tests (or an earlier
    run) left under those names is set aside and put back afterwards."""
    hub = Hub(control_plane)
    kept = [obj for obj in (hub.get("membercluster", MEMBER), hub.get("secret", "member-eu-de", "-n", NAMESPACE))
            if obj is not None]

    def clear() -> None:
        helm.run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
        hub.kubectl("delete", "namespace", "team-a", "--ignore-not-found", "--timeout=120s")
        hub.kubectl("delete", "membercluster", MEMBER, "--ignore-not-found")
        hub.kubectl("delete", "secret", "member-eu-de", "-n", NAMESPACE, "--ignore-not-found")

    clear()
    try:
        yield hub
    finally:
        clear()
        for obj in kept:
            meta = obj["metadata"]
            obj["metadata"] = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
            obj.pop("status", None)
            control_plane.kubectl(HUB, "apply", "-f", "-", input=json.dumps(obj), check=False)


@pytest.mark.skipif(not (REPO_ROOT / "operator" / "carbonshift" / "data" / "DE.csv.gz").exists(),
                    reason="the page's member replays the bundled DE trace, which is not in the package yet")
def test_quickstart_end_to_end(clean_hub: Hub, control_plane: Any, helm: Helm, kubelet: Kubelet, image: str,
                               tools_bin: Path, tmp_path: Path) -> None:
    work = tmp_path / "user"
    work.mkdir()
    (work / "carbonshift").symlink_to(REPO_ROOT)  # the clone
    (work / "eu-de.kubeconfig").write_text(control_plane.kubeconfig(MEMBER).read_text())
    env = {**helm.env, "PATH": f"{tools_bin}:{os.environ['PATH']}"}
    pod: RunningPod | None = None
    transcript: list[str] = []
    seen: dict[str, Any] = {}

    def context() -> str:
        logs = pod.logs(80) if pod is not None else "(operator pod not started)"
        return "\n".join(transcript[-12:]) + "\n--- operator log ---\n" + logs

    try:
        for block in page_blocks(PAGE.read_text()):
            if block.kind == "yaml" and block.text.startswith("# ") and block.text.split()[1].endswith(".yaml"):
                (work / block.text.split()[1]).write_text(block.text)
                continue
            if block.kind != "bash" or block.marker == "skip":
                continue
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=work, env=env,
                                    capture_output=True, text=True, timeout=600)
            output = (result.stdout + result.stderr)[-3000:]
            transcript.append(f"$ {block.text.strip()}  (docs/quickstart.md:{block.line})\n{output}")
            assert result.returncode == 0, f"docs/quickstart.md:{block.line} failed:\n{context()}"
            if block.marker == "kubelet":
                pod = kubelet.run(kubelet.wait_for_pod(NAMESPACE, f"app.kubernetes.io/instance={RELEASE}"))
            caj = clean_hub.get("caj", "nightly-report", "-n", "team-a")
            if caj is not None:
                seen = caj
    finally:
        if pod is not None:
            pod.remove()

    status = seen.get("status") or {}
    assert status.get("phase") == "Succeeded", context()
    final = status["decision"]
    first_decided = min(_time(d["decidedAt"]) for d in [*(status.get("history") or []), final])
    # On the operator's (demo) clock: it ran at least an hour after it was first decided about.
    assert _time(final["start"]) - first_decided >= timedelta(hours=1), f"not delayed: {json.dumps(status, indent=1)}"
    assert final["region"] == MEMBER
    assert any("nightly-report" in entry for entry in transcript if "get jobs -n team-a" in entry), context()


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
