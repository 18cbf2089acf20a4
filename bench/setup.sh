#!/usr/bin/env bash
# What the benchmarks need beyond the test bootstrap: restic (a contender) and the OpenSSH
# client tools (scp, ssh: the guide's script and the floor). As root on Debian/Ubuntu.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
need=()
command -v restic >/dev/null || need+=(restic)
command -v scp >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
