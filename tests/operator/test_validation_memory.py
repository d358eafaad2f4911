"""Invalid jobs are not held whole in memory: the world keeps their metadata, status and spec as
compact text, and gives the spec back when they must be checked again (no server)."""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from carbonshift.controller.world import TRIMMED, World

REPO_ROOT = Path(__file__).resolve().parents[2]


def body(generation: int = 1, phase: str = "Pending", **meta: Any) -> dict[str, Any]:
    pod = {"containers": [{"name": "m", "image": "busybox", "args": [f"arg-{i}" for i in range(2000)]}]}
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonAwareJob",
            "metadata": {"name": "j", "namespace": "n", "uid": "u", "generation": generation,
                         "resourceVersion": str(10 + generation), **meta},
            "spec": {"maxDelay": "1h", "estimatedDuration": "1h", "template": {"spec": {"template": {"spec": pod}}}},
            "status": {"phase": phase, "message": "not valid: ..."}}


def deep_size(value: Any) -> int:
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(deep_size(k) + deep_size(v) for k, v in value.items())
    elif isinstance(value, list):
        size += sum(deep_size(v) for v in value)
    return size


def test_an_invalid_job_is_kept_as_text_and_restored_on_demand() -> None:
    world = World()
    original = body()
    world.put_job(copy.deepcopy(original))
    whole = deep_size(world.jobs[("n", "j")])
    world.trim_invalid(("n", "j"), world.config_fingerprint())
    trimmed = world.jobs[("n", "j")]
    assert trimmed["spec"] == {} and trimmed["status"] == original["status"] and trimmed["metadata"]["uid"] == "u"
    assert deep_size(trimmed) < whole / 3  # 2,000 strings become one
    assert world.trimmed_config(("n", "j")) == world.config_fingerprint()
    assert ("n", "j") in world.active  # still looked at (deletion, orphan checks)
    restored = world.restore(("n", "j"))
    assert restored["spec"] == original["spec"] and TRIMMED not in restored
    assert world.trimmed_config(("n", "j")) is None


def test_a_status_change_keeps_it_trimmed_a_new_generation_does_not() -> None:
    world = World()
    world.put_job(body())
    world.trim_invalid(("n", "j"), world.config_fingerprint())
    status_update = body()
    status_update["metadata"]["resourceVersion"] = "50"
    status_update["status"]["message"] = "not valid: something else"
    world.put_job(status_update)
    kept = world.jobs[("n", "j")]
    assert TRIMMED in kept and kept["status"]["message"] == "not valid: something else"
    assert kept["metadata"]["resourceVersion"] == "50"
    edited = body(generation=2)
    edited["metadata"]["resourceVersion"] = "60"
    world.put_job(edited)
    assert TRIMMED not in world.jobs[("n", "j")] and world.jobs[("n", "j")]["spec"] == edited["spec"]


def test_the_config_fingerprint_follows_member_and_policy_specs() -> None:
    world = World()
    before = world.config_fingerprint()
    world.members["eu-de"] = {"metadata": {"name": "eu-de", "generation": 1}, "status": {"ready": True}}
    after = world.config_fingerprint()
    assert after != before
    world.members["eu-de"] = {"metadata": {"name": "eu-de", "generation": 1}, "status": {"ready": False}}
    assert world.config_fingerprint() == after  # a status change is not a config change
    world.policies[("n", "default")] = {"metadata": {"generation": 3}}
    assert world.config_fingerprint() != after


def test_the_trimmed_text_is_compact_json() -> None:
    world = World()
    world.put_job(body())
    world.trim_invalid(("n", "j"), ())
    text = world.jobs[("n", "j")][TRIMMED]["spec"]
    assert json.loads(text) == body()["spec"] and ", " not in text


# ---- on the real plane: 1,000 adversarial objects present when the operator starts (issue #12.10) ------

def _chart_memory_limit_bytes() -> int:
    import yaml

    values = yaml.safe_load((REPO_ROOT / "charts" / "carbonshift" / "values.yaml").read_text())
    limit = str(values["resources"]["limits"]["memory"])
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(limit[:-2]) * units[limit[-2:]] if limit[-2:] in units else int(limit)


def _adversarial(name: str, region: str, valid: bool) -> dict[str, Any]:
    """Just under the admission policy's caps, in template characters and values and in the
    job's own annotations; valid (restricted) or privileged."""
    from carbonshift.api.admission import MAX_ANNOTATION_CHARS, MAX_TEMPLATE_CHARS, MAX_TEMPLATE_VALUES

    count = MAX_TEMPLATE_VALUES - 60
    width = MAX_TEMPLATE_CHARS // count - 6  # '"…", ' per item in the API server's rendering
    container: dict[str, Any] = {"name": "m", "image": "busybox", "command": ["true"],
                                 "args": [f"{i:0{width}d}" for i in range(count)]}
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if valid:
        pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
        container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    else:
        container["securityContext"] = {"privileged": True}
        pod["hostPID"] = True
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonAwareJob",
            "metadata": {"name": name, "annotations": {f"bulk-{i}": "b" * 1_000
                                                        for i in range(MAX_ANNOTATION_CHARS // 1_020)}},
            "spec": {"maxDelay": "12h", "estimatedDuration": "1h", "placement": {"allowedRegions": [region]},
                     "template": {"spec": {"template": {"spec": pod}}}}}


def _cycles(process: Any) -> float:
    """Scheduling cycles the operator has run (the count of its cycle-duration histogram)."""
    for line in process.metrics().splitlines():
        if line.startswith("carbonshift_cycle_duration_seconds_count"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _peak_rss_bytes(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]) * 1024, int(fields["VmRSS"].split()[0]) * 1024


@pytest.mark.cluster
@pytest.mark.slow
def test_the_operator_starts_under_its_memory_limit_with_1000_adversarial_jobs(
        control_plane: Any, members: list[str], make_namespace: Any, tmp_path: Path) -> None:
    from operator_support import OperatorProcess, _metrics_up, free_port, wait_until

    ns = make_namespace("hub", "mem")
    # A cluster only this namespace may use, unreachable (its kubeconfig Secret does not exist):
    # the valid jobs wait for it, so nothing is dispatched and the test measures holding them.
    region = f"mem-{ns[-8:]}"
    cluster = {"apiVersion": "carbonshift.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": region},
               "spec": {"region": region, "zone": "DE", "allowedNamespaces": [ns],
                        "kubeconfigSecretRef": {"name": "absent", "namespace": "carbonshift-system"},
                        "carbonSignal": {"provider": "trace", "trace": {"path": "DE"}}}}
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(cluster))
    names = [f"adv-{i:04d}" for i in range(1000)]
    for start in range(0, len(names), 25):
        batch = {"apiVersion": "v1", "kind": "List",
                 "items": [_adversarial(n, region, valid=i % 2 == 0) for i, n in enumerate(names[start:start + 25], start)]}
        control_plane.kubectl("hub", "create", "-n", ns, "-f", "-", input=json.dumps(batch), timeout=300)
    port = free_port()
    argv = [sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={control_plane.kubeconfig('hub')}",
            "--no-leader-election", f"--metrics-port={port}", "--cycle-seconds=1"]
    process = OperatorProcess(argv, tmp_path / "operator.log", port)
    process.start()
    try:
        wait_until(lambda: _metrics_up(process), timeout=120, what="operator /metrics", on_fail=process.log_tail)

        def all_have_status() -> bool:
            # The server's table (NAME PHASE ...) in pages: cheap, unlike listing 150 MB of objects.
            out = control_plane.kubectl("hub", "get", "caj", "-n", ns, "--no-headers", "--chunk-size=50",
                                        timeout=120, check=False)
            phases = [line.split()[1] for line in out.stdout.splitlines() if len(line.split()) > 2]
            return out.returncode == 0 and sum(p in ("Pending", "Waiting") for p in phases) == len(names)
        started = time.monotonic()
        wait_until(all_have_status, timeout=1200, interval=10, what="a status on every adversarial job",
                   on_fail=process.log_tail)
        settled = time.monotonic() - started
        # A few more cycles over all of them (the invalid ones now held as text).
        cycles = _cycles(process)
        wait_until(lambda: _cycles(process) >= cycles + 5, timeout=120, what="five more cycles",
                   on_fail=process.log_tail)
        assert process.proc is not None
        peak, now = _peak_rss_bytes(process.proc.pid)
        limit = _chart_memory_limit_bytes()
        print(f"\noperator RSS with {len(names)} adversarial jobs present at start-up: peak {peak / 2**20:.0f} MiB, "
              f"after settling {now / 2**20:.0f} MiB (chart limit {limit / 2**20:.0f} MiB); every job had its "
              f"status {settled:.0f} s after /metrics came up")
        assert peak < limit
        invalid = json.loads(control_plane.kubectl("hub", "get", "caj", "-n", ns, names[1], "-o", "json").stdout)
        assert "does not meet Pod Security level" in invalid["status"]["message"]
    finally:
        process.kill()
        control_plane.kubectl("hub", "delete", "membercluster", region, "--wait=false", check=False)
