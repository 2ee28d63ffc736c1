#!/usr/bin/env bash
# Slow-link benchmark (issue 21): sending the next build of a program to a host that has the
# current one, ferry against rsync -az, rsync -a, sftp, sftp -C and the OpenSSH script (sftp put +
# ssh daemon-reload/restart), over a simulated link (bench/wanproxy.py: RTT 40 ms, 10 or 100
# Mbit/s) and over loopback.
#
#   sudo tests/remote/ferry-remote start && bench/slowlink.sh PAIRS_DIR
#
# PAIRS_DIR holds files named KIND.old and KIND.new (e.g. rebuild.old / rebuild.new: the same
# source built in another directory; oneline.*: a one-line change apart; release.*: two commits
# apart; random.*: two random files). Without PAIRS_DIR, the example server (cargo build
# --examples) and a copy of it with bytes inserted and changed stand in, plus random data.
# For every pair, each tool's run starts from the host holding the old file (ferry: the old one
# deployed, which also puts it in ferry's local blob cache, as a previous deploy from this
# machine does; rsync: the old file at the destination, sent with -I so that a file of the same
# size and mtime is not skipped). Each measure is the median of
# BENCH_RUNS (default 3) runs, the tools alternating within each run. Also prints the bytes
# ferry sent (its `uploaded` event). rsync must be on the host: the script installs it in the
# test remote (apt) if missing. User BENCH_USER (default ferry12).
set -euo pipefail
cd "$(dirname "$0")/.."
user=${BENCH_USER:-ferry12}
runs=${BENCH_RUNS:-3}
links=${BENCH_LINKS:-"10 100 loopback"}
proxy_port=${BENCH_PROXY_PORT:-2323}
remote=tests/remote/ferry-remote
eval "$("$remote" env)"
# FERRY_BIN: a ferry binary to measure instead of this checkout's release build.
ferry=${FERRY_BIN:-}
if [[ -z $ferry ]]; then
  cargo build --release --quiet --bin ferry
  ferry=$PWD/target/release/ferry
fi
work=$(mktemp -d)
proxy_pid=
cleanup() { [[ -n $proxy_pid ]] && kill "$proxy_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
. bench/lib.sh

pairs=${1:-}
if [[ -z $pairs ]]; then
  pairs=$work/pairs
  mkdir -p "$pairs"
  cargo build --examples --quiet
  cp target/debug/examples/ferry-demo "$pairs/example.old"
  python3 - "$pairs/example.old" "$pairs/example.new" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[4096:4096] = b'/home/another-builder'
b[len(b) * 3 // 4] ^= 0x5a
open(sys.argv[2], 'wb').write(b)
PY
  head -c $((12 * 1024 * 1024)) /dev/urandom >"$pairs/random.old"
  head -c $((12 * 1024 * 1024)) /dev/urandom >"$pairs/random.new"
fi
command -v rsync >/dev/null || { echo "bench: rsync is needed on this machine (apt-get install rsync)" >&2; exit 1; }
"$remote" exec sh -c 'command -v rsync >/dev/null || { apt-get install -y -q rsync || { apt-get update -q && apt-get install -y -q rsync; }; } >/dev/null 2>&1'
"$remote" ssh "$user" 'command -v rsync >/dev/null' || { echo "bench: rsync could not be installed on the host" >&2; exit 1; }

sed "s/^\[$FERRY_TEST_HOST\]:$FERRY_TEST_PORT /[$FERRY_TEST_HOST]:$proxy_port /" "$FERRY_TEST_KNOWN_HOSTS" >"$work/known_hosts"
cat "$FERRY_TEST_KNOWN_HOSTS" >>"$work/known_hosts"
set_ssh_opts "$work/known_hosts"
export XDG_CACHE_HOME=$work/cache   # ferry's blob cache: this run's own

port=$FERRY_TEST_PORT
rssh() { ssh "${ssh_opts[@]}" -p "$port" "$user@$FERRY_TEST_HOST" "$@"; }
rsftp() { sftp "${ssh_opts[@]}" -P "$port" "$@" -b - "$user@$FERRY_TEST_HOST" >/dev/null; }
rrsync() { rsync "$@" -e "ssh ${ssh_opts[*]} -p $port" ; }

start_proxy() { # RATE_MBIT
  stop_proxy
  python3 bench/wanproxy.py "$proxy_port" "$FERRY_TEST_HOST" "$FERRY_TEST_PORT" 20 "$1" >"$work/proxy.out" &
  proxy_pid=$!
  for _ in $(seq 100); do grep -q ready "$work/proxy.out" 2>/dev/null && return; sleep 0.05; done
  echo "bench: the proxy did not start" >&2; exit 1
}
stop_proxy() { [[ -n $proxy_pid ]] && { kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true; }; proxy_pid=; }

printf '[Service]\nExecStart=/bin/sleep infinity\n' >"$work/slowbench.service"
config() { # PORT
  cat >"$work/deploy.toml" <<TOML
[hosts.far]
address = "$FERRY_TEST_HOST"
port = $1
user = "$user"
identity = "$FERRY_TEST_KEY"
known_hosts = "$work/known_hosts"

[services.slowbench]
units = ["slowbench.service"]
keep_releases = 3
settle_time = "0s"

[[services.slowbench.files]]
source = "app.bin"
dest = "bin/app"
mode = "0755"
TOML
}
clean_host() {
  "$remote" ssh "$user" 'systemctl --user stop slowbench.service slowbench-manual.service 2>/dev/null; rm -rf ~/.local/share/ferry/slowbench ~/slowbench-manual ~/slowbench-rsync ~/.config/systemd/user/slowbench*; systemctl --user daemon-reload' >/dev/null 2>&1 || true
}
timed() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc; }
deploy() { cp "$1" "$work/app.bin"; "$ferry" -q --config "$work/deploy.toml" deploy; }
deploy_json() { cp "$1" "$work/app.bin"; "$ferry" --output json --config "$work/deploy.toml" deploy 2>/dev/null | grep '"uploaded"' | python3 -c 'import json,sys; e=json.loads(sys.stdin.read()); print(e["sent_bytes"])'; }
script() { # FILE: the OpenSSH script users write
  rssh 'mkdir -p ~/slowbench-manual ~/.config/systemd/user'
  printf 'put %s slowbench-manual/app\nchmod 755 slowbench-manual/app\nput %s .config/systemd/user/slowbench-manual.service\n' "$1" "$work/slowbench.service" | rsftp
  rssh 'systemctl --user daemon-reload && systemctl --user restart slowbench-manual.service'
}
rsync_to() { # OPTS FILE
  rrsync "$1" -L -I "$2" "$user@$FERRY_TEST_HOST:slowbench-rsync/app"
}
sftp_put() { # OPTS FILE
  printf 'put %s slowbench-rsync/app.sftp\n' "$2" | rsftp $1
}

measure() { # LINK
  local link=$1
  if [[ $link == loopback ]]; then stop_proxy; port=$FERRY_TEST_PORT; else start_proxy "$link"; port=$proxy_port; fi
  config "$port"
  for old in "$pairs"/*.old; do
    local kind new size
    kind=$(basename "$old" .old); new=$pairs/$kind.new
    size=$(stat -L -c %s "$new")
    declare -A t=()
    local sent=
    for _ in $(seq "$runs"); do
      clean_host
      rssh 'mkdir -p ~/slowbench-rsync'
      # ferry: the old release deployed (and cached), then the new one.
      deploy "$old" >/dev/null
      local t0 t1
      t0=$(now); sent=$(deploy_json "$new"); t1=$(now); t["ferry"]+="$(echo "$t1 - $t0" | bc) "
      rrsync -aL "$old" "$user@$FERRY_TEST_HOST:slowbench-rsync/app" >/dev/null
      t["rsync -az"]+="$(timed rsync_to -az "$new") "
      # -I: the new file left by -az has the old one's size and maybe its mtime (two files
      # made in the same second), which rsync's quick check would take for the old one.
      rrsync -aLI "$old" "$user@$FERRY_TEST_HOST:slowbench-rsync/app" >/dev/null
      t["rsync -a"]+="$(timed rsync_to -a "$new") "
      t["sftp"]+="$(timed sftp_put "" "$new") "
      t["sftp -C"]+="$(timed sftp_put -C "$new") "
      t["script"]+="$(timed script "$new") "
    done
    local f az
    f=$(printf '%s\n' ${t[ferry]} | median); az=$(printf '%s\n' ${t["rsync -az"]} | median)
    printf '%-9s %-8s %6.1f MB  ferry sent %8.2f MB |' "$link" "$kind" "$(echo "$size / 1000000" | bc -l)" "$(echo "$sent / 1000000" | bc -l)"
    for tool in ferry "rsync -az" "rsync -a" sftp "sftp -C" script; do
      printf ' %s %6.2fs' "$tool" "$(printf '%s\n' ${t[$tool]} | median)"
    done
    printf ' | ferry/rsync-az %.2f ferry/script %.2f\n' "$(echo "$f / $az" | bc -l)" \
      "$(echo "$f / $(printf '%s\n' ${t[script]} | median)" | bc -l)"
    unset t
  done
}

echo "slow-link benchmark: medians of $runs run(s); RTT 40 ms through bench/wanproxy.py for the Mbit/s links"
for link in $links; do measure "$link"; done
clean_host
