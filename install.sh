#!/usr/bin/env bash
# Installs k3s-backup on a K3s server node: a virtual environment in /opt/k3s-backup and the
# command /usr/local/bin/k3s-backup (the guide's locations). Run as root from a checkout.
set -euo pipefail
PREFIX="${K3S_BACKUP_PREFIX:-/opt/k3s-backup}"
BIN_LINK="${K3S_BACKUP_BIN_LINK:-/usr/local/bin/k3s-backup}"
COMPLETION="${K3S_BACKUP_COMPLETION:-/etc/bash_completion.d/k3s-backup}"
here="$(cd "$(dirname "$0")" && pwd)"

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (k3s etcd-snapshot needs root)" >&2
    exit 2
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install.sh: Python >= 3.11 is required" >&2
    exit 2
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
python3 -m venv "$PREFIX"
"$PREFIX/bin/python" -m pip install -q --upgrade pip
"$PREFIX/bin/python" -m pip install -q "$here"
ln -sfn "$PREFIX/bin/k3s-backup" "$BIN_LINK"
install -d -m 0700 /etc/k3s-backup /var/lib/k3s-backup
if [ ! -e /etc/k3s-backup/config.toml ]; then
    "$BIN_LINK" config init --output /etc/k3s-backup/config.toml >/dev/null
fi
# Bash completion of commands and options (click's own; bash-completion loads this directory).
install -d -m 0755 "$(dirname "$COMPLETION")"
_K3S_BACKUP_COMPLETE=bash_source "$BIN_LINK" > "$COMPLETION.tmp"
mv "$COMPLETION.tmp" "$COMPLETION"
chmod 0644 "$COMPLETION"
echo "Installed $("$BIN_LINK" --version). Next: sudo k3s-backup setup --host BACKUP-HOST"
