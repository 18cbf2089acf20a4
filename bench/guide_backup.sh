#!/usr/bin/env bash
# The guide's etcd-backup.sh (shared/reference/ETCD_BACKUP_GUIDE.md, "How the Backup Process
# Works"), reimplemented faithfully as the baseline: k3s etcd-snapshot save, the newest matching
# file scp'd to the backup host, local rotation (keep 3), remote rotation over ssh (keep 7), a
# status line over ssh. The values at the top are the guide's; the bench overrides them by
# environment (loopback sshd port, its key and known_hosts, the lab's directories).
set -euo pipefail

CLUSTER_NAME="${CLUSTER_NAME:-k3s-homelab}"
SNAPSHOT_DIR="${SNAPSHOT_DIR:-/var/lib/rancher/k3s/server/db/snapshots}"
REMOTE_HOST="${REMOTE_HOST:-192.168.1.100}"
REMOTE_USER="${REMOTE_USER:-root}"
REMOTE_DIR="${REMOTE_DIR:-/var/backups/k3s-etcd}"
SSH_KEY="${SSH_KEY:-/root/.ssh/id_ed25519}"
LOCAL_KEEP="${LOCAL_KEEP:-3}"
REMOTE_KEEP="${REMOTE_KEEP:-7}"
K3S="${K3S:-k3s}"
SSH_PORT="${SSH_PORT:-22}"
KNOWN_HOSTS="${KNOWN_HOSTS:-$HOME/.ssh/known_hosts}"

SSH_OPTS=(-i "$SSH_KEY" -o BatchMode=yes -o UserKnownHostsFile="$KNOWN_HOSTS")
log() { echo "[$(date '+%Y-%m-%d %H:%M:%S')] $*"; }

TIMESTAMP=$(date +%Y%m%d-%H%M%S)
log "Starting etcd backup"

# Step 1: create the snapshot
"$K3S" etcd-snapshot save --name "${CLUSTER_NAME}-${TIMESTAMP}"

# Step 2: the newest snapshot matching our pattern, copied to the backup host with scp
LATEST=$(ls -t "$SNAPSHOT_DIR"/${CLUSTER_NAME}-* | head -n 1)
ssh "${SSH_OPTS[@]}" -p "$SSH_PORT" "${REMOTE_USER}@${REMOTE_HOST}" "mkdir -p ${REMOTE_DIR}"
scp "${SSH_OPTS[@]}" -P "$SSH_PORT" -q "$LATEST" "${REMOTE_USER}@${REMOTE_HOST}:${REMOTE_DIR}/"
log "Copied $(basename "$LATEST") to ${REMOTE_HOST}"

# Step 3: local rotation, keep the newest LOCAL_KEEP
ls -t "$SNAPSHOT_DIR"/${CLUSTER_NAME}-* | tail -n +$((LOCAL_KEEP + 1)) | xargs -r rm -f

# Step 4: remote rotation over ssh, keep the newest REMOTE_KEEP
ssh "${SSH_OPTS[@]}" -p "$SSH_PORT" "${REMOTE_USER}@${REMOTE_HOST}" \
    "cd ${REMOTE_DIR} && ls -t ${CLUSTER_NAME}-* | tail -n +$((REMOTE_KEEP + 1)) | xargs -r rm -f"

# Step 5: status
LOCAL_COUNT=$(ls "$SNAPSHOT_DIR"/${CLUSTER_NAME}-* | wc -l)
REMOTE_STATUS=$(ssh "${SSH_OPTS[@]}" -p "$SSH_PORT" "${REMOTE_USER}@${REMOTE_HOST}" \
    "ls ${REMOTE_DIR}/${CLUSTER_NAME}-* | wc -l; du -sh ${REMOTE_DIR} | cut -f1")
log "Local snapshots: ${LOCAL_COUNT}; remote: $(echo "$REMOTE_STATUS" | paste -sd ' ')"
log "Backup complete"
