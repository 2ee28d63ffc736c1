#!/usr/bin/env bash
# A release of many small files: `ferry deploy` of a tree of $BENCH_FILES (default 10,000)
# files of a few bytes, and a redeploy with one file changed, against `rsync -a` and
# `sftp put -r` of the same tree to the same host, in one run, alternating, as ratios.
#
#   sudo tests/remote/ferry-remote start && bench/many_files.sh
#
# Each round: a fresh deploy (the service's directory removed first) vs rsync into an empty
# directory vs `sftp put -r` into an empty directory; then one file changed: a redeploy vs
# rsync again (sftp has no notion of "only what changed": not measured). The hash cache is
# cleared before each fresh deploy (a first deploy hashes every file), kept for the redeploy.
# Medians of $BENCH_RUNS rounds (default 5). ferry also does what the others do not: the
# lock, fsync of every file, a release directory of its own (the redeploy copies the 9,999
# unchanged files into it from the current release on the host), the unit's restart and
# verification.
# rsync: the host's own, else this machine's binary (and its libpopt) copied to the user's
# ~/.cache/bench-rsync (same distribution and architecture as the test remote).
# Uses remote user $BENCH_USER (default ferry122). BENCH_LINK=MBIT runs every tool through
# bench/wanproxy.py (40 ms RTT, MBIT Mbit/s each way) instead of loopback; `sftp put -r` is
# left out then (it sends one file after another, several round trips each: minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
user=${BENCH_USER:-ferry122}
runs=${BENCH_RUNS:-5}
files=${BENCH_FILES:-10000}
remote=tests/remote/ferry-remote
eval "$("$remote" env)"
command -v rsync >/dev/null || { echo "bench: needs rsync (apt-get install rsync)" >&2; exit 2; }
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work=$(mktemp -d)
proxy_pid=
trap '[[ -n $proxy_pid ]] && kill "$proxy_pid"; rm -rf "$work"' EXIT

. bench/lib.sh
set_ssh_opts
rssh() { ssh "${ssh_opts[@]}" -p "$FERRY_TEST_PORT" "$user@$FERRY_TEST_HOST" "$@"; }
port=$FERRY_TEST_PORT
known_hosts=$FERRY_TEST_KNOWN_HOSTS
if [[ -n ${BENCH_LINK:-} ]]; then
  port=${BENCH_PROXY_PORT:-2297}
  python3 bench/wanproxy.py "$port" "$FERRY_TEST_HOST" "$FERRY_TEST_PORT" 20 "$BENCH_LINK" >"$work/proxy.out" &
  proxy_pid=$!
  for _ in $(seq 100); do grep -q ready "$work/proxy.out" 2>/dev/null && break; sleep 0.05; done
  grep -q ready "$work/proxy.out" || { echo "bench: the proxy did not start" >&2; exit 1; }
  known_hosts=$work/known_hosts
  # The host's key under the proxy's port too (set-up commands still go straight to the host).
  sed "s/^\[$FERRY_TEST_HOST\]:$FERRY_TEST_PORT /[$FERRY_TEST_HOST]:$port /" "$FERRY_TEST_KNOWN_HOSTS" >"$known_hosts"
  cat "$FERRY_TEST_KNOWN_HOSTS" >>"$known_hosts"
  set_ssh_opts "$known_hosts"
fi
ssh_cmd="ssh ${ssh_opts[*]} -p $port"

rsync_path=rsync
if ! rssh 'command -v rsync' >/dev/null; then
  popt=$(ldd "$(command -v rsync)" | awk '/libpopt/ {print $3}')
  rssh 'mkdir -p ~/.cache/bench-rsync'
  scp -q "${ssh_opts[@]}" -P "$FERRY_TEST_PORT" "$(command -v rsync)" "$popt" \
    "$user@$FERRY_TEST_HOST:.cache/bench-rsync/"
  # Expanded by the remote shell.
  # shellcheck disable=SC2016
  rsync_path='LD_LIBRARY_PATH=$HOME/.cache/bench-rsync $HOME/.cache/bench-rsync/rsync'
fi

# The project: $files files under data/ (100 directories), one unit.
mkdir -p "$work/project"
cd "$work/project"
printf '[Service]\nExecStart=/bin/sh -c '\''exec sleep 600'\''\n' >many.service
{
  printf '[hosts.web1]\naddress = "%s"\nport = %s\nuser = "%s"\nidentity = "%s"\nknown_hosts = "%s"\n\n' \
    "$FERRY_TEST_HOST" "$port" "$user" "$FERRY_TEST_KEY" "$known_hosts"
  printf '[services.many]\nunits = ["many.service"]\nsettle_time = "0s"\n'
  for ((i = 0; i < files; i++)); do
    d=$(printf 'data/d%02d/f%05d.txt' $((i % 100)) "$i")
    printf '[[services.many.files]]\nsource = "%s"\ndest = "%s"\n' "$d" "$d"
  done
} >deploy.toml
for ((i = 0; i < 100; i++)); do mkdir -p "$(printf 'data/d%02d' "$i")"; done
for ((i = 0; i < files; i++)); do printf 'one %d\n' "$i" >"$(printf 'data/d%02d/f%05d.txt' $((i % 100)) "$i")"; done
export XDG_CACHE_HOME=$work/cache

clean() { rssh 'systemctl --user stop many.service 2>/dev/null; rm -rf ~/.local/share/ferry/many ~/bench-rsync ~/bench-sftp' || true; }
timed() { # FILE COMMAND...: appends the wall time of COMMAND to FILE
  local t0 t1
  t0=$(now)
  "${@:2}" >/dev/null 2>"$work/err" || { echo "bench: $* failed"; tail -5 "$work/err"; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l >>"$1"
}
ferry_deploy() { "$ferry" -q deploy; }
rsync_tree() { rsync -a --rsync-path="$rsync_path" -e "$ssh_cmd" data/ "$user@$FERRY_TEST_HOST:bench-rsync/"; }
sftp_tree() {
  echo "put -r data bench-sftp" |
    sftp -q -b - "${ssh_opts[@]}" -P "$port" "$user@$FERRY_TEST_HOST"
}

for ((r = 1; r <= runs; r++)); do
  clean
  rm -rf "$XDG_CACHE_HOME"
  timed "$work/ferry.fresh" ferry_deploy
  timed "$work/rsync.fresh" rsync_tree
  if [[ -z ${BENCH_LINK:-} ]]; then
    rssh 'mkdir -p ~/bench-sftp'
    timed "$work/sftp.fresh" sftp_tree
  fi
  changed=$(printf 'data/d%02d/f%05d.txt' $((r % 100)) "$r")
  printf 'two %d %d\n' "$r" "$RANDOM" >"$changed"
  timed "$work/ferry.one" ferry_deploy
  timed "$work/rsync.one" rsync_tree
done
clean

med() { median <"$work/$1"; }
row() { printf '%-44s %9.2f s %9.2f s %7.2f\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)"; }
link=loopback
[[ -z ${BENCH_LINK:-} ]] || link="$BENCH_LINK Mbit/s at 40 ms RTT"
printf 'many_files: %s files of a few bytes, medians of %s rounds, alternating, %s\n' "$files" "$runs" "$link"
printf '%-44s %11s %11s %7s\n' "measure" "ferry" "other" "ratio"
row "deploy vs rsync -a (fresh)" "$(med ferry.fresh)" "$(med rsync.fresh)"
[[ -n ${BENCH_LINK:-} ]] || row "deploy vs sftp put -r (fresh)" "$(med ferry.fresh)" "$(med sftp.fresh)"
row "redeploy, one changed, vs rsync -a" "$(med ferry.one)" "$(med rsync.one)"
