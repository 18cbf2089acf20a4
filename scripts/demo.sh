#!/usr/bin/env bash
# Installs what the demo needs, then runs a real backup cycle against a throwaway etcd and SSH
# backup host on loopback: run, list, verify, and a restore check with etcdctl.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/k3s-backup demo "$@"
