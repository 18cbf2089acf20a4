#!/usr/bin/env bash
# Installs everything the demo and the tests need, on a fresh Debian/Ubuntu machine, as root:
# Debian's etcd and OpenSSH (real parts for the tests), and a virtual environment in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v etcdctl >/dev/null || need_apt+=(etcd-client)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
# Independent decoders: the tests prove every stored form restores with standard tools.
command -v zstd >/dev/null || need_apt+=(zstd)
command -v unzip >/dev/null || need_apt+=(unzip)
command -v age >/dev/null || need_apt+=(age)
command -v logrotate >/dev/null || need_apt+=(logrotate)          # checks setup's rule
command -v systemd-analyze >/dev/null || need_apt+=(systemd)      # verifies setup's units
command -v python3 >/dev/null || need_apt+=(python3)
if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    need_apt+=(python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "bootstrap: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"k3s-backup needs Python >= 3.11, this is {sys.version.split()[0]}")
PY

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[test]"

# promtool, Prometheus's rule checker, for the alert-rule tests: taken out of Debian's package
# instead of installing it (that would also install and start a Prometheus server).
if ! command -v promtool >/dev/null && [ ! -x .venv/bin/promtool ]; then
    dl="$(mktemp -d)"
    chmod 0755 "$dl"
    if ! (cd "$dl" && apt-get download -qq prometheus 2>/dev/null); then
        apt-get update -qq
        (cd "$dl" && apt-get download -qq prometheus 2>/dev/null)
    fi
    dpkg-deb --fsys-tarfile "$dl"/prometheus_*.deb | tar -x -C "$dl" ./usr/bin/promtool
    install -m 0755 "$dl/usr/bin/promtool" .venv/bin/promtool
    rm -rf "$dl"
fi
