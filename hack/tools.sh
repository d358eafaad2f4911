#!/usr/bin/env bash
# Installs the pinned binaries the local control plane needs, into the user's cache folder.
# Go binaries are built from the Go module proxy once; a second run only checks they exist.
# Prints the bin folder on stdout (everything else goes to stderr).
set -euo pipefail

K8S_VERSION=v1.34.4
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.19.5

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/carbonshift
bin=$cache_root/tools-k8s${K8S_VERSION}-kwok${KWOK_VERSION}-helm${HELM_VERSION}/bin
mkdir -p "$bin"

log() { echo "[tools] $*" >&2; }

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export GOCACHE=${GOCACHE:-$cache_root/go-build}

need_apt=()   # Debian package
need_units=() # the systemd unit that package installs
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || { need_apt+=(etcd-server); need_units+=(etcd); }
command -v prometheus >/dev/null 2>&1 || { need_apt+=(prometheus); need_units+=(prometheus); }
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  # The packages would start their system services (the project runs its own instances). A
  # policy-rc.d that refuses every start (exit 101) keeps them from starting during this install;
  # it is removed right after. Nothing running is ever stopped by name: a user's own etcd or
  # Prometheus is left alone.
  policy=${CARBONSHIFT_POLICY_RC_D:-/usr/sbin/policy-rc.d}  # overridable for hack/tools.sh's own test
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# carbonshift hack/tools.sh: no service starts during its apt-get install\nexit 101\n' \
      | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    own_policy=1
    trap '$sudo rm -f "$policy"' EXIT
  fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
  if [ -n "$own_policy" ]; then $sudo rm -f "$policy"; trap - EXIT; fi
  if [ -d /run/systemd/system ]; then
    # Nor at boot. Only the units these packages just installed; with an existing policy-rc.d
    # that let them start, stop those units (they are the ones this install started).
    if [ -n "$own_policy" ]; then now=; else now=--now; fi
    for unit in "${need_units[@]}"; do $sudo systemctl disable $now "$unit.service" >/dev/null 2>&1 || true; done
  fi
fi

k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler)
missing=0
for b in "${k8s_bins[@]}"; do [ -x "$bin/$b" ] || missing=1; done
if [ $missing = 1 ]; then
  log "building ${k8s_bins[*]} $K8S_VERSION from the Go module proxy (first time: many minutes on 2 cores)"
  start=$(date +%s)
  pkg_version=k8s.io/component-base/version
  ldflags="-s -w -X $pkg_version.gitVersion=$K8S_VERSION -X $pkg_version.gitMajor=1 -X $pkg_version.gitMinor=34 -X $pkg_version.gitTreeState=clean -X $pkg_version.buildDate=1970-01-01T00:00:00Z"
  (cd "$here/tools/k8s" && go build -tags selinux,notest,grpcnotrace -ldflags "$ldflags" -o "$bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler)
  log "built Kubernetes binaries in $(( $(date +%s) - start )) s"
fi

if [ ! -x "$bin/kwok" ]; then
  log "building kwok $KWOK_VERSION"
  GOBIN=$bin go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
fi

if [ ! -x "$bin/helm" ]; then
  log "building helm $HELM_VERSION"
  GOBIN=$bin go install -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
fi

echo "$bin"
