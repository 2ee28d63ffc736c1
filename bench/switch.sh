#!/usr/bin/env bash
# Zero downtime without socket activation: a plain HTTP server that binds its own port (the
# demo server, `--listen 127.0.0.1:$PORT`) as a blue/green service (`[services.web.switch]`)
# on the test remote, under a steady load of new connections from this machine
# (bench/switch_load.py, open loop), while ferry runs 10 deploys (each a new release) and 2
# rollbacks in a row. After each one the front must serve the expected release. Prints a
# table per operation (time, requests started during it, failed, slowest) and the totals:
# requests, failed requests, connection resets, the longest gap between two successful
# answers, latency percentiles. Exits 1 when a request failed or a wrong release served.
#
#   tests/remote/ferry-remote start && bench/switch.sh
#
# Settings: BENCH_USER (ferry84, wiped first with `ferry-remote reset-user`), BENCH_RATE
# (requests/s, 200), BENCH_DEPLOYS (10), BENCH_DRAIN (drain, "2s"), BENCH_PORT (the front,
# 19950; the colours are the next two ports), FERRY_BIN and DEMO_BIN (default: built here with
# cargo, debug profile). Do not run it while the test suite runs on the same remote.
set -euo pipefail
cd "$(dirname "$0")/.."
remote=tests/remote/ferry-remote
if [[ -z ${FERRY_TEST_PORT:-} ]]; then
  env_text=$("$remote" env) || { echo "the test remote is not running: $remote start" >&2; exit 1; }
  eval "$env_text"
fi
user=${BENCH_USER:-ferry84}
rate=${BENCH_RATE:-200}
deploys=${BENCH_DEPLOYS:-10}
drain=${BENCH_DRAIN:-2s}
listen=${BENCH_PORT:-19950}
blue=$((listen + 1)) green=$((listen + 2))
if [[ -z ${FERRY_BIN:-} || -z ${DEMO_BIN:-} ]]; then
  cargo build --quiet --bin ferry --example ferry-demo
fi
ferry=${FERRY_BIN:-$PWD/target/debug/ferry}
demo=${DEMO_BIN:-$PWD/target/debug/examples/ferry-demo}
load=$PWD/bench/switch_load.py

work=$(mktemp -d)
load_pid=
cleanup() {
  touch "$work/stop"
  if [[ -n $load_pid ]]; then wait "$load_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=bench/lib.sh
. bench/lib.sh
"$remote" reset-user "$user" >/dev/null

mkdir -p "$work/p"
cp "$demo" "$work/p/ferry-demo"
cat >"$work/p/deploy.toml" <<EOF
[hosts.bench]
address = "$FERRY_TEST_HOST"
port = $FERRY_TEST_PORT
user = "$user"
identity = "$FERRY_TEST_KEY"
known_hosts = "$FERRY_TEST_KNOWN_HOSTS"

[services.web]
start_timeout = "20s"
settle_time = "0.5s"

[services.web.run]
command = "bin/ferry-demo --listen 127.0.0.1:\${PORT} --message message.txt"

[services.web.switch]
listen = "127.0.0.1:$listen"
ports = [$blue, $green]
drain = "$drain"

[services.web.health]
http = "http://127.0.0.1:$listen/healthz"
timeout = "20s"
interval = "100ms"

[[services.web.files]]
source = "ferry-demo"
dest = "bin/ferry-demo"
mode = "0755"

[[services.web.files]]
source = "message.txt"
dest = "message.txt"
EOF

# ferry ARGS...: run ferry in the project; its output is kept, and shown when it fails.
run_ferry() {
  (cd "$work/p" && "$ferry" --config deploy.toml "$@") >"$work/out" 2>&1 || {
    echo "ferry $* failed:" >&2
    cat "$work/out" >&2
    exit 1
  }
}

# op LABEL EXPECTED ARGS...: one timed ferry run, then the front must serve EXPECTED.
bad=0
op() {
  local label=$1 expected=$2 start end served
  shift 2
  start=$(now)
  run_ferry "$@"
  end=$(now)
  echo "$label $start $end" >>"$work/ops"
  served=$(curl -fsS --max-time 5 "http://127.0.0.1:$listen/" || echo "(no answer)")
  if [[ $served != "$expected" ]]; then
    echo "after $label the front serves '$served', not '$expected'" >&2
    bad=1
  fi
}

echo "release 0" >"$work/p/message.txt"
run_ferry deploy
: >"$work/ops"
python3 "$load" run "$listen" "$rate" "$work/stop" "$work/log" &
load_pid=$!
sleep 1   # the load's steady state before the first operation
last=0
for i in $(seq 1 "$deploys"); do
  echo "release $i" >"$work/p/message.txt"
  op "deploy $i" "release $i" deploy
  # A rollback after the middle deploy and after the last one.
  if [[ $i -eq $((deploys / 2)) || $i -eq $deploys ]]; then
    op "rollback after $i" "release $last" rollback web
  fi
  last=$i
done
sleep 1
touch "$work/stop"
wait "$load_pid"
load_pid=
echo "bench/switch.sh: $deploys deploys and 2 rollbacks of a blue/green service under $rate requests/s (drain $drain), user $user"
status=0
python3 "$load" report "$work/log" "$work/ops" || status=1
[[ $bad -eq 0 ]] || status=1
exit "$status"
