#!/usr/bin/env bash
# Benchmark of `ferry deploy` against what users do today, in one run, on the test remote.
#
#   sudo tests/remote/ferry-remote start && bench/deploy.sh
#
# 1. Deploy of a 20 MiB binary + 2 unit files to one host: ferry vs an OpenSSH script
#    (`sftp` put of the files, then `ssh` running daemon-reload and restart). ferry also waits
#    until the unit is really up (poll + 1.5 s settle time), which the script does not do.
# 2. Peak RSS of ferry uploading a 1 GiB file (GNU time's "Maximum resident set size").
# 3. Upload throughput of a 256 MiB file: ferry vs OpenSSH `sftp` put (default cipher and
#    aes128-gcm), medians of $BENCH_BIG_RUNS (default 3), and where a 256 MiB deploy's time goes
#    (each step's start, from the `--output json` events as they arrive).
# 4. A redeploy of what is current (a no-op) vs `ssh HOST true`.
# Uses remote user $BENCH_USER (default ferry12). Prints a table; ratios are ferry / OpenSSH.
set -euo pipefail
cd "$(dirname "$0")/.."
user=${BENCH_USER:-ferry12}
runs=${BENCH_RUNS:-5}
remote=tests/remote/ferry-remote
eval "$("$remote" env)"
command -v /usr/bin/time >/dev/null || { echo "bench: needs GNU time (apt-get install time)" >&2; exit 2; }
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

. bench/lib.sh
set_ssh_opts
rssh() { ssh "${ssh_opts[@]}" -p "$FERRY_TEST_PORT" "$user@$FERRY_TEST_HOST" "$@"; }
rsftp() { sftp "${ssh_opts[@]}" -P "$FERRY_TEST_PORT" -b - "$user@$FERRY_TEST_HOST" >/dev/null; }

rssh 'systemctl --user stop bench.service bench.socket 2>/dev/null; rm -rf ~/.local/share/ferry/bench ~/bench-manual ~/.config/systemd/user/bench.*; systemctl --user daemon-reload' || true

# A 20 MiB "binary" that changes every run (so nothing can be skipped), and two units.
head -c $((20 * 1024 * 1024)) /dev/urandom > "$work/app.bin"
cat > "$work/bench.service" <<'UNIT'
[Unit]
Requires=bench.socket
After=bench.socket
[Service]
ExecStart=/bin/sleep infinity
UNIT
cat > "$work/bench.socket" <<'UNIT'
[Socket]
ListenStream=%t/bench.sock
[Install]
WantedBy=sockets.target
UNIT
cat > "$work/deploy.toml" <<TOML
[hosts.bench]
address = "$FERRY_TEST_HOST"
port = $FERRY_TEST_PORT
user = "$user"
identity = "$FERRY_TEST_KEY"
known_hosts = "$FERRY_TEST_KNOWN_HOSTS"

[services.bench]
units = ["bench.service", "bench.socket"]
restart = ["bench.service"]
keep_releases = 3

[[services.bench.files]]
source = "app.bin"
dest = "bin/app"
mode = "0755"
TOML

sed 's/^keep_releases = 3$/keep_releases = 3\nsettle_time = "0s"/' "$work/deploy.toml" > "$work/deploy0.toml"
ferry_times=() ; ferry0_times=() ; script_times=()
for i in $(seq "$runs"); do
    printf 'run %d\n' "$i" >> "$work/app.bin.tail"; cat "$work/app.bin.tail" >> "$work/app.bin"
    t0=$(now); "$ferry" -q --config "$work/deploy.toml" deploy >/dev/null; t1=$(now)
    ferry_times+=("$(echo "$t1 - $t0" | bc)")
    printf 'run %d b\n' "$i" >> "$work/app.bin"
    t0=$(now); "$ferry" -q --config "$work/deploy0.toml" deploy >/dev/null; t1=$(now)
    ferry0_times+=("$(echo "$t1 - $t0" | bc)")
    t0=$(now)
    rssh 'mkdir -p ~/bench-manual ~/.config/systemd/user'
    printf 'put %s bench-manual/app\nchmod 755 bench-manual/app\nput %s .config/systemd/user/bench-manual.service\nput %s .config/systemd/user/bench-manual.socket\n' \
        "$work/app.bin" "$work/bench.service" "$work/bench.socket" | rsftp
    rssh 'systemctl --user daemon-reload && systemctl --user restart bench-manual.service'
    t1=$(now)
    script_times+=("$(echo "$t1 - $t0" | bc)")
done
fm=$(printf '%s\n' "${ferry_times[@]}" | median)
f0=$(printf '%s\n' "${ferry0_times[@]}" | median)
sm=$(printf '%s\n' "${script_times[@]}" | median)
printf '\n%-48s %10s %10s %8s\n' "measure (median of $runs)" "ferry" "openssh" "ratio"
printf '%-48s %9.2fs %9.2fs %8.2f\n' "deploy 20 MiB + 2 units (settle_time 1.5s)" "$fm" "$sm" "$(echo "$fm / $sm" | bc -l)"
printf '%-48s %9.2fs %9.2fs %8.2f\n' "deploy 20 MiB + 2 units (settle_time 0s)" "$f0" "$sm" "$(echo "$f0 / $sm" | bc -l)"

# Throughput: 256 MiB. ferry: its upload phase (connection already up), and a whole deploy
# process (connect, local + remote hashing, upload, restart; settle_time 0); sftp: a whole
# `sftp` process (connect, authenticate, put).
big_runs=${BENCH_BIG_RUNS:-3}
head -c $((256 * 1024 * 1024)) /dev/urandom > "$work/app.bin"
fd=$("$ferry" -q --output json --config "$work/deploy0.toml" deploy \
    | python3 -c 'import json,sys; print(next(e["seconds"] for e in map(json.loads, sys.stdin) if e.get("phase") == "uploaded"))')
fws=(); sds=(); sgs=()
for i in $(seq "$big_runs"); do
  printf 'x' >> "$work/app.bin"
  t0=$(now); "$ferry" -q --config "$work/deploy0.toml" deploy >/dev/null; t1=$(now)
  fws+=("$(echo "$t1 - $t0" | bc)")
  t0=$(now); printf 'put %s bench-manual/app\n' "$work/app.bin" | rsftp; t1=$(now)
  sds+=("$(echo "$t1 - $t0" | bc)")
  t0=$(now); printf 'put %s bench-manual/app\n' "$work/app.bin" | sftp -c aes128-gcm@openssh.com "${ssh_opts[@]}" -P "$FERRY_TEST_PORT" -b - "$user@$FERRY_TEST_HOST" >/dev/null; t1=$(now)
  sgs+=("$(echo "$t1 - $t0" | bc)")
done
printf '256 MiB runs (s): ferry %s; sftp %s; sftp -c aes128-gcm %s\n' "${fws[*]}" "${sds[*]}" "${sgs[*]}"
fw=$(printf '%s\n' "${fws[@]}" | median)
sd=$(printf '%s\n' "${sds[@]}" | median)
sg=$(printf '%s\n' "${sgs[@]}" | median)
printf '%-48s %7.0fMiB/s %7.0fMiB/s %8.2f\n' "upload 256 MiB (ferry upload phase; sftp process)" "$(echo "256 / $fd" | bc -l)" "$(echo "256 / $sd" | bc -l)" "$(echo "$sd / $fd" | bc -l)"
printf '%-48s %9.2fs %9.2fs %8.2f\n' "256 MiB: ferry whole deploy vs sftp put" "$fw" "$sd" "$(echo "$fw / $sd" | bc -l)"
printf '%-48s %9.2fs %9.2fs %8.2f\n' "256 MiB: ferry whole deploy vs sftp -c aes128-gcm" "$fw" "$sg" "$(echo "$fw / $sg" | bc -l)"

# The same size as the current release's copy (a rebuilt image): one byte changed in place,
# in the first MiB (ferry compares the file's first MiB with the host's copy) and at the end
# (the same first MiB: hashed whole before its upload). Alternating with sftp -c aes128-gcm.
for at in start end; do
  fss=(); sss=()
  for i in $(seq "$big_runs"); do
    size=$(stat -c %s "$work/app.bin")
    if [[ $at == start ]]; then off=$((4096 * i)); else off=$((size - 1 - i)); fi
    python3 -c 'import sys; f = open(sys.argv[1], "r+b"); o = int(sys.argv[2]); f.seek(o); b = f.read(1)[0]; f.seek(o); f.write(bytes([b ^ 0xFF]))' "$work/app.bin" "$off"
    t0=$(now); "$ferry" -q --config "$work/deploy0.toml" deploy >/dev/null; t1=$(now)
    fss+=("$(echo "$t1 - $t0" | bc)")
    t0=$(now); printf 'put %s bench-manual/app\n' "$work/app.bin" | sftp -c aes128-gcm@openssh.com "${ssh_opts[@]}" -P "$FERRY_TEST_PORT" -b - "$user@$FERRY_TEST_HOST" >/dev/null; t1=$(now)
    sss+=("$(echo "$t1 - $t0" | bc)")
  done
  ratios=()
  for i in "${!fss[@]}"; do ratios+=("$(printf '%.2f' "$(echo "${fss[i]} / ${sss[i]}" | bc -l)")"); done
  printf '256 MiB same size, changed at the %s: ferry %s; sftp -c aes128-gcm %s; ratios %s\n' "$at" "${fss[*]}" "${sss[*]}" "${ratios[*]}"
  f=$(printf '%s\n' "${fss[@]}" | median); g=$(printf '%s\n' "${sss[@]}" | median)
  printf '%-48s %9.2fs %9.2fs %8.2f\n' "256 MiB same size ($at): ferry vs sftp -c aes128-gcm" "$f" "$g" "$(echo "$f / $g" | bc -l)"
done

# Where a 256 MiB deploy's time goes: when each step starts (seconds since ferry started).
printf 'x' >> "$work/app.bin"
bench/steps.py "$ferry" "$work/deploy0.toml" table "timeline of one 256 MiB deploy (settle_time 0): step, start, duration"

# A redeploy of what is current (nothing changed): a no-op, vs `ssh HOST true`.
nops=(); trues=()
for i in $(seq "$runs"); do
  t0=$(now); "$ferry" -q --config "$work/deploy0.toml" deploy >/dev/null; t1=$(now)
  nops+=("$(echo "$t1 - $t0" | bc)")
  t0=$(now); rssh true; t1=$(now)
  trues+=("$(echo "$t1 - $t0" | bc)")
done
nm=$(printf '%s\n' "${nops[@]}" | median)
tm=$(printf '%s\n' "${trues[@]}" | median)
printf '%-48s %9.2fs %9.2fs %8.2f\n' "redeploy, nothing changed, vs ssh HOST true" "$nm" "$tm" "$(echo "$nm / $tm" | bc -l)"

# Peak RSS with a 1 GiB file.
head -c $((1024 * 1024 * 1024)) /dev/zero | tr '\0' 'x' > "$work/app.bin"
/usr/bin/time -v "$ferry" -q --config "$work/deploy.toml" deploy >/dev/null 2> "$work/time.txt"
rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time.txt")
printf '%-48s %8.1fMiB\n' "peak RSS of ferry deploying a 1 GiB file" "$(echo "$rss / 1024" | bc -l)"

rssh 'systemctl --user stop bench.service bench.socket bench-manual.service bench-manual.socket 2>/dev/null; systemctl --user disable bench.socket 2>/dev/null; rm -rf ~/.local/share/ferry/bench ~/bench-manual ~/.config/systemd/user/bench*; systemctl --user daemon-reload' || true
