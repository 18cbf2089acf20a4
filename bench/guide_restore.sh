#!/usr/bin/env bash
# The guide's "Restoring from Backup" steps on the primary server, scripted as an operator would
# type them: stop K3s, scp the copy from the backup host, cluster-reset from it, start K3s, wait
# until the node answers Ready. Overrides by environment as in guide_backup.sh; NAME is the file.
set -euo pipefail
: "${NAME:?the snapshot file name on the backup host}"
REMOTE_HOST="${REMOTE_HOST:-192.168.1.100}"
REMOTE_USER="${REMOTE_USER:-root}"
REMOTE_DIR="${REMOTE_DIR:-/var/backups/k3s-etcd}"
SSH_KEY="${SSH_KEY:-/root/.ssh/id_ed25519}"
SSH_PORT="${SSH_PORT:-22}"
KNOWN_HOSTS="${KNOWN_HOSTS:-$HOME/.ssh/known_hosts}"
K3S="${K3S:-k3s}"
WORK="${WORK:-/tmp}"

systemctl stop k3s                                                          # step 1
scp -i "$SSH_KEY" -o BatchMode=yes -o UserKnownHostsFile="$KNOWN_HOSTS" -P "$SSH_PORT" -q \
    "${REMOTE_USER}@${REMOTE_HOST}:${REMOTE_DIR}/${NAME}" "$WORK/"             # step 2
"$K3S" server --cluster-reset --cluster-reset-restore-path="$WORK/$NAME"    # step 3
systemctl start k3s                                                         # step 4
until "$K3S" kubectl get nodes 2>/dev/null | grep -q ' Ready '; do sleep 1; done  # step 5
