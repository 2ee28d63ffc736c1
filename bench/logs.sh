#!/usr/bin/env bash
# bench/logs.sh: measure `ferry logs` against the test remote (tests/remote/ferry-remote).
#
#  1. follow latency: a unit writes a line every 100 ms, each carrying the time it was written
#     (date +%s%N on the remote); `ferry logs -f` runs, and each line's arrival on ferry's stdout
#     is stamped here. Latency = arrival - written; the median over 50 lines is printed. The
#     remote is a container on this machine, so both stamps come from the same clock. The same
#     is measured for `ssh HOST journalctl -f` as a baseline (journald itself wakes followers
#     at most every 250 ms or so, which dominates both).
#  2. `ferry logs SERVICE -n 1000` against `ssh HOST journalctl --user -u UNIT -n 1000`, both
#     run RUNS times alternately in this run (each includes its connection setup); medians and
#     their ratio are printed.
#
# Usage: bench/logs.sh            (uses remote user ferry9; RUNS=10 by default)
# Needs: the test remote running (sudo tests/remote/ferry-remote start), bash >= 5, cargo.
set -euo pipefail

cd "$(dirname "$0")/.."
REMOTE=${FERRY_REMOTE:-$(cd "$(dirname "$0")/.." && pwd)/tests/remote/ferry-remote}
[[ -x $REMOTE ]] || REMOTE=tests/remote/ferry-remote
if [[ -z ${FERRY_TEST_PORT:-} ]]; then
  env_text=$("$REMOTE" env) || { echo "the test remote is not running: sudo $REMOTE start" >&2; exit 1; }
  eval "$env_text"
fi
USER_=${BENCH_USER:-ferry9}
RUNS=${RUNS:-10}
LINES=50

cargo build --release --quiet
FERRY=$PWD/target/release/ferry

SSH=(ssh -F /dev/null -i "$FERRY_TEST_KEY" -p "$FERRY_TEST_PORT" -o IdentitiesOnly=yes -o BatchMode=yes
  -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$FERRY_TEST_KNOWN_HOSTS"
  -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR "$USER_@$FERRY_TEST_HOST")

work=$(mktemp -d)
ferry_pid=
cleanup() {
  [[ -n $ferry_pid ]] && kill "$ferry_pid" 2>/dev/null || true
  "${SSH[@]}" 'systemctl --user stop flt-bench-tick.service flt-bench-bulk.service 2>/dev/null;
    rm -f ~/.config/systemd/user/flt-bench-tick.service ~/.config/systemd/user/flt-bench-bulk.service;
    systemctl --user daemon-reload' || true
  rm -rf "$work"
}
trap cleanup EXIT

# Units (escaped for systemd: $$ is $, %% is %).
tick='[Service]
ExecStart=/bin/sh -c "i=0; while :; do i=$$((i+1)); echo n=$$i ns=$$(date +%%s%%N); sleep 0.1; done"'
bulk='[Service]
ExecStart=/bin/sh -c "for i in $$(seq 1 1200); do echo bulk line $$i with some padding text to look like a log; done; exec sleep infinity"'
printf '%s\n' "$tick" >"$work/flt-bench-tick.service"
printf '%s\n' "$bulk" >"$work/flt-bench-bulk.service"
cat >"$work/deploy.toml" <<EOF
[defaults]
port = $FERRY_TEST_PORT
identity = "$FERRY_TEST_KEY"
known_hosts = "$FERRY_TEST_KNOWN_HOSTS"

[hosts.bench]
address = "$FERRY_TEST_HOST"
user = "$USER_"

[services.tick]
units = ["flt-bench-tick.service"]

[services.bulk]
units = ["flt-bench-bulk.service"]
EOF
for u in flt-bench-tick.service flt-bench-bulk.service; do
  "${SSH[@]}" "mkdir -p ~/.config/systemd/user && cat > ~/.config/systemd/user/$u" <"$work/$u"
done
"${SSH[@]}" 'systemctl --user daemon-reload && systemctl --user restart flt-bench-bulk.service'

# --- 1. follow latency ----------------------------------------------------------------------
# follow_latency LABEL CMD...: run CMD (a follower printing the unit's lines), restart the unit,
# stamp LINES lines as they arrive, stop CMD with SIGINT, print the median.
follow_latency() {
  local label=$1 line now ns lat=() sorted median_us
  shift
  coproc FOLLOW { exec "$@" 2>"$work/follow.err"; }
  ferry_pid=$FOLLOW_PID
  sleep 1 # let the follower start before the unit writes
  "${SSH[@]}" 'systemctl --user restart flt-bench-tick.service'
  while ((${#lat[@]} < LINES)) && IFS= read -r -t 20 line <&"${FOLLOW[0]}"; do
    now=${EPOCHREALTIME/./} # microseconds
    ns=${line##*ns=}
    [[ $ns =~ ^[0-9]+$ ]] || continue
    lat+=($((now - ns / 1000)))
  done
  kill -INT "$ferry_pid" 2>/dev/null || true
  wait "$ferry_pid" 2>/dev/null || true
  ferry_pid=
  ((${#lat[@]} == LINES)) || { echo "$label: got ${#lat[@]} of $LINES lines; stderr:" >&2; cat "$work/follow.err" >&2; exit 1; }
  mapfile -t sorted < <(printf '%s\n' "${lat[@]}" | sort -n)
  median_us=$(((sorted[LINES / 2 - 1] + sorted[LINES / 2]) / 2))
  printf '%s: follow latency over %d lines (written on the remote -> printed): median %d.%03d ms, min %d.%03d ms, max %d.%03d ms\n' \
    "$label" "$LINES" $((median_us / 1000)) $((median_us % 1000)) $((sorted[0] / 1000)) $((sorted[0] % 1000)) \
    $((sorted[LINES - 1] / 1000)) $((sorted[LINES - 1] % 1000))
}
follow_latency "ferry logs -f" "$FERRY" --config "$work/deploy.toml" logs tick -f -n 0
# Baseline: the same through OpenSSH and journalctl's own text output.
follow_latency "ssh journalctl -f (baseline)" "${SSH[@]}" journalctl --user -u flt-bench-tick.service -f -n 0 -o cat

# --- 2. -n 1000: ferry vs ssh journalctl ---------------------------------------------------
for _ in $(seq 50); do
  n=$("${SSH[@]}" 'journalctl --user -u flt-bench-bulk.service -o cat | grep -c "^bulk line"' || true)
  ((n >= 1200)) && break
  sleep 0.2
done
ms() { local s=${EPOCHREALTIME/./}; "$@" >"$work/out"; echo $(((${EPOCHREALTIME/./} - s))); }
ferry_t=() ssh_t=()
for _ in $(seq "$RUNS"); do
  ferry_t+=("$(ms "$FERRY" --config "$work/deploy.toml" logs bulk -n 1000)")
  nf=$(wc -l <"$work/out")
  ssh_t+=("$(ms "${SSH[@]}" journalctl --user -u flt-bench-bulk.service -n 1000 --no-pager)")
  ns_=$(wc -l <"$work/out")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mf=$(median "${ferry_t[@]}")
msh=$(median "${ssh_t[@]}")
awk -v f="$mf" -v s="$msh" -v r="$RUNS" -v nf="$nf" -v ns="$ns_" 'BEGIN {
  printf "ferry logs -n 1000: median %.1f ms (%d lines); ssh journalctl -n 1000: median %.1f ms (%d lines); ratio ferry/ssh %.2f (medians of %d alternating runs)\n",
    f / 1000, nf, s / 1000, ns, f / s, r }'
