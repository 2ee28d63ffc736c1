#!/usr/bin/env bash
# Fan-out to 200 hosts: `ferry exec SERVICE -- true` on 200 host names, and the memory and file
# descriptors ferry holds while it does, for --parallel 8, 32 and 200.
#
#   sudo tests/remote/ferry-remote start && bench/fanout.sh
#
# The 200 hosts are the test remote's 60 users under 3 or 4 names each (h001..h200; exec keeps
# no state per host). One sshd answers all of them, with MaxStartups 100:30:200, so at
# --parallel 200 it drops some handshakes and ferry retries them. Peak RSS from GNU time; open
# file descriptors sampled from /proc/PID/fd every 20 ms (the highest count seen). A deploy of
# a tiny service to the 60 users first gives exec a current release everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
remote=tests/remote/ferry-remote
eval "$("$remote" env)"
command -v /usr/bin/time >/dev/null || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 2; }
read -r -a users <<<"$FERRY_TEST_USERS"
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

{
  for i in $(seq 1 200); do
    u=${users[$(((i - 1) % ${#users[@]}))]}
    printf '[hosts.h%03d]\naddress = "%s"\nport = %s\nuser = "%s"\nidentity = "%s"\nknown_hosts = "%s"\n\n' \
      "$i" "$FERRY_TEST_HOST" "$FERRY_TEST_PORT" "$u" "$FERRY_TEST_KEY" "$FERRY_TEST_KNOWN_HOSTS"
  done
  printf '[groups]\nall = [%s]\ndistinct = [%s]\n\n' \
    "$(seq -f '"h%03g"' -s, 1 200)" "$(seq -f '"h%03g"' -s, 1 ${#users[@]})"
  cat <<'TOML'
[services.fanout]
hosts = ["all"]
settle_time = "0s"

[[services.fanout.files]]
source = "hello.txt"
dest = "share/hello.txt"
TOML
} >"$work/deploy.toml"
echo hello >"$work/hello.txt"
# One name per user (a deploy holds a lock per user and service).
"$ferry" -q -c "$work/deploy.toml" deploy -H distinct --parallel 16 >/dev/null

measure() { # PARALLEL (env passed through)
  /usr/bin/time -v "$ferry" -q -c "$work/deploy.toml" --output json exec fanout -H all --parallel "$1" -- true \
    >"$work/out.json" 2>"$work/time.txt" &
  local tpid=$! pid="" max=0 n
  while kill -0 "$tpid" 2>/dev/null; do
    [[ -z $pid ]] && pid=$(pgrep -P "$tpid" -x ferry || true)
    if [[ -n $pid ]]; then
      n=$( (ls "/proc/$pid/fd" 2>/dev/null || true) | wc -l)
      ((n > max)) && max=$n
    fi
    sleep 0.02
  done
  wait "$tpid" || { echo "bench: exec --parallel $1 failed"; tail -5 "$work/time.txt"; exit 1; }
  local ok wall rss
  ok=$(grep -c '"type":"exec".*"exit_status":0' "$work/out.json" || true)
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time.txt")
  printf '%-40s %10s %12.1f MiB %10s %8s\n' "exec -- true on 200 hosts, --parallel $1" "$wall" "$(echo "$rss / 1024" | bc -l)" "$max" "$ok/200"
}

printf '%-40s %10s %16s %10s %8s\n' "measure" "wall" "peak RSS" "max fds" "ok"
measure 8
measure 32
measure 200

for u in "${users[@]}"; do
  "$remote" ssh "$u" 'rm -rf ~/.local/share/ferry/fanout' >/dev/null 2>&1 || true
done
