"""hack/tools.sh installs Debian's etcd and Prometheus without ever stopping a user's own ones (issue 14.5).

The script runs for real, with `apt-get` and `systemctl` replaced by recorders on PATH and the binaries
"missing", next to a process of the user's that is named `prometheus`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / "hack" / "tools.sh"
RECORDER = """#!/bin/bash
echo "$(basename "$0") $*" >> "$LOG"
if [ "$(basename "$0")" = apt-get ] && [ "$1" = install ]; then
  [ -x "$POLICY" ] && "$POLICY" etcd start; echo "policy-rc.d: $?" >> "$LOG"
fi
"""


def test_tools_sh_keeps_services_from_starting_and_kills_nothing(tmp_path: Path) -> None:
    bin_dir, cache = tmp_path / "bin", tmp_path / "cache"
    bin_dir.mkdir()
    # Only what the script needs; prometheus is not on this PATH, so it installs it.
    for tool in ("bash", "dirname", "id", "mkdir", "printf", "tee", "chmod", "rm", "cat", "basename"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    for fake in ("apt-get", "systemctl", "pkill", "killall", "kill"):
        (bin_dir / fake).write_text(RECORDER)
        (bin_dir / fake).chmod(0o755)
    # The pinned binaries are "built" already (in the folder the script names after its pins): no Go build runs.
    pins = dict(re.findall(r"^(K8S_VERSION|KWOK_VERSION|HELM_VERSION)=(\S+)$", TOOLS.read_text(), re.M))
    built = (cache / "carbonshift" / f"tools-k8s{pins['K8S_VERSION']}-kwok{pins['KWOK_VERSION']}"
             f"-helm{pins['HELM_VERSION']}" / "bin")
    built.mkdir(parents=True)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "helm"):
        (built / name).write_text("#!/bin/sh\n")
        (built / name).chmod(0o755)
    # The user's own Prometheus (a `sleep` under that name; not on the script's PATH): `pkill -x prometheus` would hit it.
    (tmp_path / "user").mkdir()
    os.symlink(shutil.which("sleep"), tmp_path / "user" / "prometheus")
    users_own = subprocess.Popen([str(tmp_path / "user" / "prometheus"), "60"])
    log, policy = tmp_path / "calls.log", tmp_path / "policy-rc.d"
    try:
        env = {"PATH": str(bin_dir), "XDG_CACHE_HOME": str(cache), "HOME": str(tmp_path), "LOG": str(log),
               "POLICY": str(policy), "CARBONSHIFT_POLICY_RC_D": str(policy)}
        run = subprocess.run(["bash", str(TOOLS)], env=env, capture_output=True, text=True,
                             check=False)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == str(built)
        calls = log.read_text().splitlines()
        assert any(c.startswith("apt-get install") and c.endswith(" prometheus") for c in calls), calls
        assert "policy-rc.d: 101" in calls  # every service start refused during the install
        assert not [c for c in calls if c.split()[0] in ("pkill", "killall", "kill")], calls
        assert not policy.exists()  # the policy was there only for the install
        assert users_own.poll() is None  # the user's own process still runs
    finally:
        users_own.kill()
        users_own.wait()
