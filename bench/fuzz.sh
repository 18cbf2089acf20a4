#!/usr/bin/env bash
# Run the fuzz targets of tests/fuzz/ for as long as asked, each in its own pytest process.
#   bash bench/fuzz.sh [--minutes N] [--jobs J] [--report FILE] [TARGET...]
# N minutes per target (default 10); J targets at a time (default 2: this is a 2-core machine);
# TARGET: pytest node ids (default: every target). Each target runs under a 4 GiB address-space
# limit (--memory-mib), so an unbounded allocation shows as a MemoryError, a finding. The report (JSON, default
# bench/fuzz-report.json) gets each target's executions and seconds; a finding fails its
# target, prints the shrunk input and how to reproduce it, and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=10 jobs=2 report=bench/fuzz-report.json memory_mib=4096 targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --report) report="$2"; shift 2 ;;
        --memory-mib) memory_mib="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(.venv/bin/pytest -q --collect-only tests/fuzz | grep '::')
fi

logs="$(mktemp -d)"
rm -f "$report"
export K3S_BACKUP_FUZZ_SECONDS="$(awk "BEGIN { print $minutes * 60 }")"
echo "fuzz: ${#targets[@]} targets, $minutes min each, $jobs at a time; logs in $logs"
run_one() {
    local target="$1" log
    log="$1"; log="$logs/${log//[^A-Za-z0-9_]/_}.log"
    # One report per target (they run in parallel); merged at the end.
    ulimit -v "$((memory_mib * 1024))"  # this target's subshell only
    if K3S_BACKUP_FUZZ_REPORT="$log.json" .venv/bin/pytest -q -p no:cacheprovider "$target" \
        >"$log" 2>&1; then
        echo "ok    $target"
    else
        echo "FOUND $target (see $log)"
        return 1
    fi
}
export -f run_one
export logs memory_mib
status=0
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} || status=1
.venv/bin/python - "$report" "$logs" <<'PY'
import json, pathlib, sys
merged = {}
for part in sorted(pathlib.Path(sys.argv[2]).glob("*.json")):
    merged.update(json.loads(part.read_text()))
pathlib.Path(sys.argv[1]).write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
for target, row in sorted(merged.items()):
    print(f"{target:45} {row['executions']:>9} executions in {row['seconds']:>7} s")
PY
exit "$status"
