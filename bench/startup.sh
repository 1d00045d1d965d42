#!/usr/bin/env bash
# Measures, for `airlock demo` on a fresh data directory:
#   - time from process start to the first 200 from /readyz (migrations
#     and the admin bootstrap done, serving);
#   - time until the credentials file is written (demo users created);
#   - resident memory (VmRSS) after 5 seconds idle.
# Usage: bench/startup.sh [runs]   (default 5 runs; prints one line per run)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bin=$(mktemp -d)/airlock
go build -o "$bin" ./cmd/airlock
port=18181
for i in $(seq 1 "$runs"); do
  start=$(date +%s%N)
  creds=$(mktemp -u)
  "$bin" demo --listen 127.0.0.1:$port --credentials-file "$creds" >/dev/null 2>&1 &
  pid=$!
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do sleep 0.002; done
  ready=$(( ($(date +%s%N) - start) / 1000000 ))
  until [ -s "$creds" ]; do sleep 0.002; done
  seeded=$(( ($(date +%s%N) - start) / 1000000 ))
  rm -f "$creds"
  sleep 5
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  kill -TERM $pid; wait $pid || true
  echo "run $i: readyz after ${ready} ms, demo users after ${seeded} ms, idle RSS $((rss / 1024)) MiB"
done
