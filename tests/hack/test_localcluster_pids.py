"""`hack/cluster down` stops only the plane's own processes, even from a stale pids.json.

PIDs are recycled: on a busy machine the PID a stopped component had may belong to someone
else's process later. `down` must never signal that process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "hack"))

from localcluster import LocalControlPlane


def test_down_never_signals_a_process_that_is_not_the_planes(tmp_path: Path) -> None:
    plane = LocalControlPlane(state_dir=tmp_path / "plane", names=("hub",))
    plane.state_dir.mkdir(parents=True)
    # A user's own process whose PID a stale pids.json happens to name.
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    # One of the plane's own: its command line names the plane's state folder.
    own = subprocess.Popen(["sh", "-c", "sleep 60", "component", f"--data-dir={plane.state_dir / 'etcd'}"],
                           start_new_session=True)
    try:
        # Until the child has exec'd, its command line is still this Python's (seen on a loaded machine).
        cmdline = Path(f"/proc/{own.pid}/cmdline")
        deadline = time.monotonic() + 20
        while str(plane.state_dir).encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        plane.pid_file.write_text(json.dumps({"etcd": own.pid, "hub-apiserver": stranger.pid}))
        assert plane.running() == {"etcd": own.pid}
        assert plane.down() == ["etcd"]
        assert own.wait(timeout=20) != 0
        assert stranger.poll() is None, "down signalled a process that was not the plane's"
    finally:
        for proc in (stranger, own):
            proc.kill()
            proc.wait()
