"""A private container engine to build and run the operator image, with no registry at hand.

Why: the image must be built and run for real on machines that have no container engine and
reach no image registry. This script installs Debian's engine (docker.io: dockerd, containerd,
runc) and mmdebstrap if they are missing, and runs containerd and dockerd with every root,
state folder and socket under ~/.cache/carbonshift/engine (nothing under /var/lib/docker or
/run). Host networking only: dockerd starts with `--bridge=none` and without iptables, so it
never creates its default bridge (which hands out private-range addresses); containers run with
`--network host`. The daemons are stopped by the PIDs this script recorded, never by name.

The base image is made from Debian packages (mmdebstrap, cached as a tar: it does not change
with the code) and `docker import`ed. Wheels of the dependencies are downloaded on the host, so
the build itself reaches no network (legacy builder, no BuildKit).

  python3 hack/engine.py install | up | down | status | base | wheels | build [--tag T]

Only the standard library is used, so it runs before the project is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "carbonshift"
ROOT = CACHE / "engine"
APT_PACKAGES = ("docker.io", "mmdebstrap")
SUITE = "bookworm"
PYTHON_MINOR = "3.11"  # bookworm's python3; the wheels are downloaded for it
# What the base image holds: a Python able to make a venv, and the CA bundle for the operator's
# HTTPS calls (signal providers, API servers). Nothing else: no pip tools, no shell utilities
# beyond minbase.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# dpkg drops these paths while unpacking: documentation (copyright notices kept), man pages,
# translations. They are most of a minbase system that is not code.
BASE_DPKG_OPTS = (
    "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*", "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/i18n/*", "path-exclude=/usr/share/zoneinfo/right/*",
    "path-exclude=/usr/share/zoneinfo/posix/*",
)
# The standard library's bytecode stays (5 MB): under a read-only root file system Python could
# not cache it, and would compile every module it imports at each start.
BASE_CLEANUP = ("rm -rf $1/var/lib/apt/lists/* $1/var/cache/apt/* $1/var/cache/debconf/*-old "
                "$1/var/log/* $1/usr/lib/python3.11/test $1/usr/lib/python3/dist-packages/*/tests")
DEFAULT_TAG = "ghcr.io/carbonshift/carbonshift"
BASE_IMAGE_ENV = "CARBONSHIFT_BASE_IMAGE"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class EngineError(RuntimeError):
    """The engine could not be installed, started or used; the message says what to do."""


def log(msg: str) -> None:
    print(f"engine: {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Engine:
    root: Path = ROOT

    @property
    def run_dir(self) -> Path:
        """Sockets and PID files. A unix socket path may have at most ~104 bytes, so a deep cache
        folder gets a short stand-in under /tmp, named after it."""
        run = self.root / "run"
        if len(str(run / "containerd.sock.ttrpc")) <= 100:
            return run
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path("/tmp") / f"carbonshift-engine-{os.geteuid()}-{digest}"

    @property
    def containerd_sock(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def docker_sock(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.docker_sock}"

    def pidfile(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.pid"

    def logfile(self, daemon: str) -> Path:
        return self.root / "log" / f"{daemon}.log"

    def env(self) -> dict[str, str]:
        """Environment for `docker` calls against this engine (legacy builder: no BuildKit here)."""
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0",
                "DOCKER_CONFIG": str(self.root / "client")}

    def docker(self, *args: str, check: bool = True, capture: bool = True,
               timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], env=self.env(), text=True, timeout=timeout,
                                capture_output=capture)
        if check and result.returncode != 0:
            raise EngineError(f"docker {' '.join(args)} failed ({result.returncode}): "
                              f"{(result.stderr or '').strip()[-2000:]}")
        return result

    # ---- install --------------------------------------------------------------------------------

    def missing(self) -> list[str]:
        need = {"dockerd": "docker.io", "containerd": "docker.io", "runc": "docker.io", "docker": "docker.io",
                "mmdebstrap": "mmdebstrap"}
        return sorted({pkg for binary, pkg in need.items() if shutil.which(binary) is None})

    def install(self) -> None:
        missing = self.missing()
        if not missing:
            return
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        if sudo and shutil.which("sudo") is None:
            raise EngineError(f"missing {' '.join(missing)}: install them as root (apt-get install {' '.join(missing)})")
        log(f"installing Debian packages: {' '.join(missing)}")
        # policy-rc.d answering 101 keeps the packages' services (dockerd with its default
        # bridge, containerd) from being started by the install; ours run only as `up` starts them.
        policy = Path("/usr/sbin/policy-rc.d")
        made_policy = not policy.exists()
        if made_policy:
            subprocess.run([*sudo, "sh", "-c", f"printf '#!/bin/sh\\nexit 101\\n' > {policy} && chmod 755 {policy}"],
                           check=True)
        try:
            apt = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", "DPkg::Lock::Timeout=600"]
            subprocess.run([*apt, "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
            subprocess.run([*apt, "install", "-y", "-qq", "--no-install-recommends", *missing], check=True,
                           stdout=subprocess.DEVNULL)
        finally:
            if made_policy:
                subprocess.run([*sudo, "rm", "-f", str(policy)], check=False)
        if self.missing():
            raise EngineError(f"still missing after apt-get install: {' '.join(self.missing())}")

    # ---- daemons --------------------------------------------------------------------------------

    def _pid(self, daemon: str) -> int | None:
        """The recorded PID, if that process is still the daemon we started (not a reused PID)."""
        try:
            pid = int(self.pidfile(daemon).read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if Path(cmdline[0].decode()).name != daemon or str(self.root).encode() not in b"\0".join(cmdline):
            return None
        return pid

    def running(self) -> bool:
        return self._pid("containerd") is not None and self._pid("dockerd") is not None and self._answers()

    def _answers(self) -> bool:
        if not self.docker_sock.exists():
            return False
        return self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=10).returncode == 0

    def _spawn(self, daemon: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        self.logfile(daemon).parent.mkdir(parents=True, exist_ok=True)
        with self.logfile(daemon).open("ab") as out:
            # Own session: a Ctrl-C in the caller's terminal does not reach the daemons.
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pidfile(daemon).write_text(f"{proc.pid}\n")
        return proc

    def _wait(self, daemon: str, proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                return
            time.sleep(0.2)
        log_text = self.logfile(daemon).read_text(errors="replace") if self.logfile(daemon).exists() else ""
        self.down()
        raise EngineError(f"{daemon} did not start; last lines of {self.logfile(daemon)}:\n{log_text[-3000:]}")

    def up(self) -> bool:
        """Starts containerd and dockerd unless they run; True if this call started them."""
        if self.running():
            return False
        self.install()
        self.down()  # half-started leftovers of an earlier run
        for sub in ("log", "containerd", "containerd-state", "docker", "docker-exec", "client"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for private in (self.root, self.run_dir):
            private.chmod(0o700)
        config = self.root / "containerd.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.root / "containerd"}"\n'
            f'state = "{self.root / "containerd-state"}"\n'
            # The CRI plugin (for kubelets) is not used; it would look for CNI and more.
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            "[grpc]\n"
            f'  address = "{self.containerd_sock}"\n'
            "[ttrpc]\n"
            f'  address = "{self.containerd_sock}.ttrpc"\n'
            "[debug]\n"
            '  address = ""\n'
            "[metrics]\n"
            '  address = ""\n'
            '[plugins."io.containerd.internal.v1.opt"]\n'
            f'  path = "{self.root / "containerd" / "opt"}"\n'
        )
        self.containerd_sock.unlink(missing_ok=True)
        containerd = self._spawn("containerd", ["containerd", "--config", str(config)])
        self._wait("containerd", containerd, self.containerd_sock.exists)
        daemon_json = self.root / "daemon.json"
        daemon_json.write_text("{}\n")  # not /etc/docker/daemon.json: the host's settings are not ours
        dockerd = self._spawn("dockerd", [
            "dockerd", "--config-file", str(daemon_json),
            "--data-root", str(self.root / "docker"), "--exec-root", str(self.root / "docker-exec"),
            "--pidfile", str(self.run_dir / "dockerd.own.pid"),
            "--containerd", str(self.containerd_sock), "-H", self.host,
            # Host networking only: no default bridge, no NAT, no firewall rules, no IPv6 setup.
            "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--ipv6=false",
            "--userland-proxy=false",
        ])
        self._wait("dockerd", dockerd, self._answers)
        networks = self.docker("network", "ls", "--format", "{{.Driver}}").stdout.split()
        if "bridge" in networks:
            self.down()
            raise EngineError("dockerd created a bridge network although started with --bridge=none; stopped it")
        log(f"up: DOCKER_HOST={self.host}")
        return True

    def down(self) -> None:
        """Stops dockerd, then containerd, by the PIDs recorded at start."""
        for daemon in ("dockerd", "containerd"):
            pid = self._pid(daemon)
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline and self._pid(daemon) == pid:
                time.sleep(0.2)
            if self._pid(daemon) == pid:
                log(f"{daemon} (pid {pid}) did not stop in {STOP_TIMEOUT_S:.0f} s; killing it")
                os.kill(pid, signal.SIGKILL)
            self.pidfile(daemon).unlink(missing_ok=True)
            _reap(pid)
        if self._pid("dockerd") is None and self._pid("containerd") is None:
            self._unmount_leftovers()

    def _unmount_leftovers(self) -> None:
        """dockerd leaves its network-namespace mount (and, when killed, overlay mounts) behind;
        only mounts inside our own folder are touched, deepest first."""
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        ours = [m for m in mounts if m.startswith(f"{self.root}/")]
        for mount in sorted(ours, key=len, reverse=True):
            subprocess.run(["umount", mount], check=False, capture_output=True)

    # ---- base image, wheels, build ---------------------------------------------------------------

    def base(self) -> str:
        """The Debian base image's tag, made (mmdebstrap) and imported if needed."""
        recipe = json.dumps([SUITE, BASE_PACKAGES, BASE_DPKG_OPTS, BASE_CLEANUP, "merged-usr"])
        digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
        tag = f"carbonshift/python:{PYTHON_MINOR}-{SUITE}-{digest}"
        if self.docker("image", "inspect", tag, check=False).returncode == 0:
            return tag
        tar = CACHE / "base" / f"debian-{SUITE}-python{PYTHON_MINOR}-{digest}.tar"
        if not tar.exists():
            tar.parent.mkdir(parents=True, exist_ok=True)
            log(f"making the base from Debian packages (mmdebstrap, about a minute): {tar}")
            partial = tar.with_suffix(".partial.tar")
            # The merged-usr hook sets up /usr itself; otherwise bookworm pulls in usrmerge and
            # with it all of perl (47 MB).
            cmd = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                   "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                   *(f"--dpkgopt={opt}" for opt in BASE_DPKG_OPTS),
                   f"--customize-hook={BASE_CLEANUP}", SUITE, str(partial)]
            subprocess.run(cmd, check=True)
            partial.rename(tar)
            for stale in tar.parent.glob(f"debian-{SUITE}-python*.tar"):  # earlier recipes
                if stale != tar:
                    stale.unlink()
        log(f"importing {tar.name} as {tag}")
        self.docker("import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--change", "CMD [\"python3\"]", str(tar), tag)
        return tag

    def wheels(self, dest: Path) -> Path:
        """Wheels of every runtime dependency (and of the build backend) for the image's Python.

        Downloaded again only when the requirement list changes (a stamp file in ``dest``)."""
        project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
        requirements = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
        stamp = dest / "requirements.txt"
        wanted = f"# python {PYTHON_MINOR}, manylinux x86_64\n" + "\n".join(requirements) + "\n"
        if stamp.exists() and stamp.read_text() == wanted and any(dest.glob("*.whl")):
            return dest
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.glob("*.whl"):
            old.unlink()
        stamp.unlink(missing_ok=True)
        # Binary wheels for bookworm's CPython (glibc 2.36), whatever Python runs this script.
        platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)] + ["manylinux2014_x86_64"]
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--dest", str(dest), "--only-binary=:all:", "--implementation", "cp",
               "--python-version", PYTHON_MINOR, *(f"--platform={p}" for p in platforms), *requirements]
        subprocess.run(cmd, check=True)
        stamp.write_text(wanted)
        return dest

    def build(self, tag: str, context: Path = REPO_ROOT) -> None:
        # A registry base instead (e.g. python:3.11-slim-bookworm@sha256:...), pulled first; it
        # must be a CPython 3.11 on glibc like the Debian one, since the wheels are made for it.
        base = os.environ.get(BASE_IMAGE_ENV)
        if base:
            if self.docker("image", "inspect", base, check=False).returncode != 0:
                self.docker("pull", base, capture=False)
        else:
            base = self.base()
        wheels = self.wheels(context / "build" / "wheelhouse")
        log(f"building {tag} from {base} with the wheels in {wheels.relative_to(context)}")
        self.docker("build", "--network", "none", "--build-arg", f"PYTHON_IMAGE={base}",
                    "--build-arg", "PIP_OFFLINE=1", "-t", tag, str(context), capture=False)


def _reap(pid: int) -> None:
    """Collects the exit status if this process started the daemon (no zombie left behind)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def default_tag() -> str:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    return f"{DEFAULT_TAG}:{version}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("install", "up", "down", "status", "base", "wheels", "build", "env"))
    parser.add_argument("--tag", default=None, help=f"image tag for build (default {DEFAULT_TAG}:<version>)")
    args = parser.parse_args(argv)
    engine = Engine()
    try:
        if args.command == "install":
            engine.install()
        elif args.command == "up":
            engine.up()
        elif args.command == "down":
            engine.down()
        elif args.command == "status":
            print("running" if engine.running() else "stopped")
        elif args.command == "env":
            print(f"export DOCKER_HOST={engine.host} DOCKER_BUILDKIT=0")
        elif args.command == "base":
            engine.up()
            print(engine.base())
        elif args.command == "wheels":
            print(engine.wheels(REPO_ROOT / "build" / "wheelhouse"))
        elif args.command == "build":
            engine.up()
            engine.build(args.tag or default_tag())
    except (EngineError, subprocess.CalledProcessError) as exc:
        print(f"engine: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
