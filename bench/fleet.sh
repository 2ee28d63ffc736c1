#!/usr/bin/env bash
# Benchmark of ferry on a fleet: wall time on many hosts vs one host, on the test remote.
#
#   sudo tests/remote/ferry-remote start && bench/fleet.sh
#
# 1. `ferry exec SERVICE -- true` on 1 host vs 2N hosts (--parallel 2N): connection, auth and one
#    command per host. The 2N hosts are the N remote users, each under two host names (exec keeps
#    no state per host, so sharing a user changes nothing).
# 2. `ferry deploy` (a 5 MiB file + a unit, default settle_time 1.5 s) to 1 host vs N hosts at
#    once (--parallel N), and vs N hosts in batches of 2. A deploy holds a lock per user and
#    service, so each deployed host is its own user.
# Users: $BENCH_USERS (default ferry25..ferry40: N = 16). Medians of $BENCH_RUNS runs (default 3).
# Do not run it while the test suite runs on the same remote (the suite uses these users).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a users <<<"${BENCH_USERS:-$(seq -f 'ferry%g' -s ' ' 25 40)}"
n=${#users[@]}
runs=${BENCH_RUNS:-3}
remote=tests/remote/ferry-remote
eval "$("$remote" env)"
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

. bench/lib.sh
set_ssh_opts
rssh() { local u=$1; shift; ssh "${ssh_opts[@]}" -p "$FERRY_TEST_PORT" "$u@$FERRY_TEST_HOST" "$@"; }
rsftp() { local u=$1; sftp "${ssh_opts[@]}" -P "$FERRY_TEST_PORT" -b - "$u@$FERRY_TEST_HOST" >/dev/null; }
# What teams run today: per host, `sftp` put of the binary and the unit, then `ssh`
# daemon-reload + restart (no wait for the unit to stay up, no release kept, no lock).
script_host() {
  local u=$1
  rssh "$u" 'mkdir -p ~/fleetbench-manual ~/.config/systemd/user'
  printf 'put %s fleetbench-manual/app\nput %s .config/systemd/user/fleetbench-manual.service\n' \
    "$work/app.bin" "$work/fleetbench-manual.service" | rsftp "$u"
  rssh "$u" 'systemctl --user daemon-reload && systemctl --user restart fleetbench-manual.service'
}
script_parallel() { local u pids=(); for u in "$@"; do script_host "$u" & pids+=($!); done; for p in "${pids[@]}"; do wait "$p"; done; }
script_sequential() { local u; for u in "$@"; do script_host "$u"; done; }
ssh_true_parallel() { local u pids=(); for u in "$@" "$@"; do rssh "$u" true & pids+=($!); done; for p in "${pids[@]}"; do wait "$p"; done; }

cleanup_hosts() {
  for u in "${users[@]}"; do
    rssh "$u" 'systemctl --user stop fleetbench.service fleetbench-manual.service 2>/dev/null; rm -rf ~/.local/share/ferry/fleetbench ~/fleetbench-manual ~/.config/systemd/user/fleetbench.service ~/.config/systemd/user/fleetbench-manual.service; systemctl --user daemon-reload' || true
  done
}
cleanup_hosts

printf '[Service]\nExecStart=/bin/sleep infinity\n' >"$work/fleetbench.service"
printf '[Service]\nExecStart=/bin/sleep infinity\n' >"$work/fleetbench-manual.service"
{
  i=0
  for _round in 1 2; do
    for u in "${users[@]}"; do
      i=$((i + 1))
      printf '[hosts.b%02d]\naddress = "%s"\nport = %s\nuser = "%s"\nidentity = "%s"\nknown_hosts = "%s"\n\n' \
        "$i" "$FERRY_TEST_HOST" "$FERRY_TEST_PORT" "$u" "$FERRY_TEST_KEY" "$FERRY_TEST_KNOWN_HOSTS"
    done
  done
  n=${#users[@]}
  printf '[groups]\none = ["b01"]\nall = [%s]\ndistinct = [%s]\n\n' \
    "$(seq -f '"b%02g"' -s, 1 $((2 * n)))" "$(seq -f '"b%02g"' -s, 1 "$n")"
  cat <<TOML
[services.fleetbench]
hosts = ["all"]
units = ["fleetbench.service"]
keep_releases = 3

[services.fleetbench.rollout]
batch = ${BENCH_BATCH:-100}

[[services.fleetbench.files]]
source = "app.bin"
dest = "bin/app"
mode = "0755"
TOML
} >"$work/deploy.toml"

cfg="$work/deploy.toml"
# Every user gets the service once, so that exec finds a current release everywhere.
head -c $((5 * 1024 * 1024)) /dev/urandom >"$work/app.bin"
"$ferry" -q -c "$cfg" deploy -H distinct --parallel "$n" >/dev/null
# exec reaches every one of the 2N host names (not only the service's deployed ones).
ran=$("$ferry" -q -c "$cfg" --output json exec fleetbench -H all --parallel $((2 * n)) -- true | grep -c '"type":"exec".*"exit_status":0' || true)
[[ $ran == $((2 * n)) ]] || { echo "bench: exec succeeded on $ran hosts, not $((2 * n))" >&2; exit 1; }

timed() { # the command; prints its wall time in seconds; fails loudly if it fails
  local t0 t1
  t0=$(now)
  "$@" >/dev/null 2>"$work/err" || { echo "bench: failed: $*" >&2; cat "$work/err" >&2; exit 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

exec1=(); exec16=(); dep1=(); dep8=(); dep8b=(); sshN=(); sc1=(); scN=(); scS=()
for _ in $(seq "$runs"); do
  exec1+=("$(timed "$ferry" -q -c "$cfg" exec fleetbench -H one -- true)")
  exec16+=("$(timed "$ferry" -q -c "$cfg" exec fleetbench -H all --parallel $((2 * n)) -- true)")
  head -c $((5 * 1024 * 1024)) /dev/urandom >"$work/app.bin"
  dep1+=("$(timed "$ferry" -q -c "$cfg" deploy -H one)")
  head -c $((5 * 1024 * 1024)) /dev/urandom >"$work/app.bin"
  dep8+=("$(timed "$ferry" -q -c "$cfg" deploy -H distinct --parallel "$n")")
  head -c $((5 * 1024 * 1024)) /dev/urandom >"$work/app.bin"
  sed -i 's/^batch = .*/batch = 2/' "$cfg"
  dep8b+=("$(timed "$ferry" -q -c "$cfg" deploy -H distinct --parallel "$n")")
  sed -i "s/^batch = .*/batch = ${BENCH_BATCH:-100}/" "$cfg"
  sshN+=("$(timed ssh_true_parallel "${users[@]}")")
  head -c $((5 * 1024 * 1024)) /dev/urandom >"$work/app.bin"
  sc1+=("$(timed script_host "${users[0]}")")
  scN+=("$(timed script_parallel "${users[@]}")")
  scS+=("$(timed script_sequential "${users[@]}")")
done

m() { printf '%s\n' "$@" | median; }
e1=$(m "${exec1[@]}"); e16=$(m "${exec16[@]}")
d1=$(m "${dep1[@]}"); d8=$(m "${dep8[@]}"); d8b=$(m "${dep8b[@]}")
sn=$(m "${sshN[@]}"); s1=$(m "${sc1[@]}"); sp=$(m "${scN[@]}"); ss=$(m "${scS[@]}")
printf '\n%-58s %9s %9s %7s\n' "measure (median of $runs)" "1 host" "N hosts" "ratio"
printf '%-58s %8.2fs %8.2fs %7.2f\n' "exec -- true: 1 host vs $((2 * n)) hosts (--parallel $((2 * n)))" "$e1" "$e16" "$(echo "$e16 / $e1" | bc -l)"
printf '%-58s %8.2fs %8.2fs %7.2f\n' "deploy 5 MiB + unit: 1 host vs $n hosts (one batch)" "$d1" "$d8" "$(echo "$d8 / $d1" | bc -l)"
printf '%-58s %8.2fs %8.2fs %7.2f\n' "deploy 5 MiB + unit: 1 host vs $n hosts (batch = 2)" "$d1" "$d8b" "$(echo "$d8b / $d1" | bc -l)"

printf '\n%-58s %9s %9s %7s\n' "reference: OpenSSH script (median of $runs)" "ferry" "script" "ratio"
printf '%-58s %8.2fs %8.2fs %7.2f\n' "$((2 * n)) hosts: exec -- true vs \`ssh HOST true\` x $((2 * n)) (&)" "$e16" "$sn" "$(echo "$e16 / $sn" | bc -l)"
printf '%-58s %8.2fs %8.2fs %7.2f\n' "1 host: deploy vs sftp put + ssh restart" "$d1" "$s1" "$(echo "$d1 / $s1" | bc -l)"
printf '%-58s %8.2fs %8.2fs %7.2f\n' "$n hosts: deploy (one batch) vs script on all hosts (&)" "$d8" "$sp" "$(echo "$d8 / $sp" | bc -l)"
printf '%-58s %8.2fs %8.2fs %7.2f\n' "$n hosts: deploy (one batch) vs script, host after host" "$d8" "$ss" "$(echo "$d8 / $ss" | bc -l)"
echo "(ferry waits until the units stayed up for settle_time = 1.5 s; the script does not wait)"

cleanup_hosts
