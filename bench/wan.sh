#!/usr/bin/env bash
# WAN benchmark: a deploy over a slow, distant link, ferry vs the OpenSSH script, same work.
#
#   sudo tests/remote/ferry-remote start && bench/wan.sh
#
# The link: 40 ms round trip, 100 Mbit/s, then 10 Mbit/s. This machine's kernel has no
# sch_netem (`tc qdisc add dev lo root netem` says "Specified qdisc kind is unknown"), so a
# network namespace with netem is impossible here; bench/wanproxy.py simulates the link in user
# space instead (a TCP proxy delaying every byte by RTT/2 and limiting each direction's rate).
#
# Work: a 20 MiB binary (new content each run) + 2 unit files, to one host, then the unit
# restarted. ferry: `ferry deploy` (settle_time 0: like the script, it does not wait for the
# unit to stay up; it still checks it started). Script: `ssh` mkdir, `sftp` put of the three
# files, `ssh` daemon-reload + restart. Medians of $BENCH_RUNS (default 3). User $BENCH_USER
# (default ferry12).
set -euo pipefail
cd "$(dirname "$0")/.."
user=${BENCH_USER:-ferry12}
runs=${BENCH_RUNS:-3}
proxy_port=${BENCH_PROXY_PORT:-2322}
remote=tests/remote/ferry-remote
eval "$("$remote" env)"
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work=$(mktemp -d)
proxy_pid=
cleanup() { [[ -n $proxy_pid ]] && kill "$proxy_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The host key, under the proxy's port.
sed "s/^\[$FERRY_TEST_HOST\]:$FERRY_TEST_PORT /[$FERRY_TEST_HOST]:$proxy_port /" "$FERRY_TEST_KNOWN_HOSTS" >"$work/known_hosts"
. bench/lib.sh
set_ssh_opts "$work/known_hosts"
rssh() { ssh "${ssh_opts[@]}" -p "$proxy_port" "$user@$FERRY_TEST_HOST" "$@"; }
rsftp() { sftp "${ssh_opts[@]}" -P "$proxy_port" -b - "$user@$FERRY_TEST_HOST" >/dev/null; }

start_proxy() { # RATE_MBIT
  [[ -n $proxy_pid ]] && { kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; }
  python3 bench/wanproxy.py "$proxy_port" "$FERRY_TEST_HOST" "$FERRY_TEST_PORT" 20 "$1" >"$work/proxy.out" &
  proxy_pid=$!
  for _ in $(seq 100); do grep -q ready "$work/proxy.out" 2>/dev/null && return; sleep 0.05; done
  echo "bench: the proxy did not start" >&2; exit 1
}

printf '[Unit]\nRequires=wanbench.socket\nAfter=wanbench.socket\n[Service]\nExecStart=/bin/sleep infinity\n' >"$work/wanbench.service"
printf '[Socket]\nListenStream=%%t/wanbench.sock\n[Install]\nWantedBy=sockets.target\n' >"$work/wanbench.socket"
cat >"$work/deploy.toml" <<TOML
[hosts.far]
address = "$FERRY_TEST_HOST"
port = $proxy_port
user = "$user"
identity = "$FERRY_TEST_KEY"
known_hosts = "$work/known_hosts"

[services.wanbench]
units = ["wanbench.service", "wanbench.socket"]
restart = ["wanbench.service"]
keep_releases = 3
settle_time = "0s"

[[services.wanbench.files]]
source = "app.bin"
dest = "bin/app"
mode = "0755"
TOML

clean_host() {
  "$remote" ssh "$user" 'systemctl --user stop wanbench.service wanbench.socket wanbench-manual.service wanbench-manual.socket 2>/dev/null; systemctl --user disable wanbench.socket 2>/dev/null; rm -rf ~/.local/share/ferry/wanbench ~/wanbench-manual ~/.config/systemd/user/wanbench*; systemctl --user daemon-reload' >/dev/null 2>&1 || true
}
clean_host

measure() { # RATE_MBIT
  start_proxy "$1"
  local ft=() st=() tt=() t0 t1
  for _ in $(seq "$runs"); do
    head -c $((20 * 1024 * 1024)) /dev/urandom >"$work/app.bin"
    t0=$(now); "$ferry" -q --config "$work/deploy.toml" deploy >/dev/null; t1=$(now)
    ft+=("$(echo "$t1 - $t0" | bc)")
    t0=$(now)
    rssh 'mkdir -p ~/wanbench-manual ~/.config/systemd/user'
    printf 'put %s wanbench-manual/app\nchmod 755 wanbench-manual/app\nput %s .config/systemd/user/wanbench-manual.service\nput %s .config/systemd/user/wanbench-manual.socket\n' \
      "$work/app.bin" "$work/wanbench.service" "$work/wanbench.socket" | rsftp
    rssh 'systemctl --user daemon-reload && systemctl --user restart wanbench-manual.service'
    t1=$(now)
    st+=("$(echo "$t1 - $t0" | bc)")
    t0=$(now); rssh true; t1=$(now)
    tt+=("$(echo "$t1 - $t0" | bc)")
  done
  local f s t
  f=$(printf '%s\n' "${ft[@]}" | median); s=$(printf '%s\n' "${st[@]}" | median); t=$(printf '%s\n' "${tt[@]}" | median)
  printf '%-52s %8.2fs %8.2fs %7.2f\n' "40 ms RTT, $1 Mbit/s: deploy 20 MiB + 2 units" "$f" "$s" "$(echo "$f / $s" | bc -l)"
  printf '%-52s %9s %8.2fs\n' "  (one \`ssh HOST true\` on this link)" "" "$t"
  # Where ferry's time goes on this link: each step's start.
  head -c $((20 * 1024 * 1024)) /dev/urandom >"$work/app.bin"
  bench/steps.py "$ferry" "$work/deploy.toml" line
}

printf '%-52s %9s %9s %7s\n' "measure (median of $runs)" "ferry" "script" "ratio"
measure 100
measure 10
clean_host
