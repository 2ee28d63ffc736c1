#!/bin/sh
# Soak bench: N deploys in a row (new content each time) against the test remote, then check
# that nothing grows on the host: the user's processes, their open files, ferry's temporary
# files (.ferry-tmp*, *.ferry-part, *.partial), files in /tmp and /var/tmp, and releases
# beyond keep_releases. Prints the figures; exits 1 when something grew.
#
#   tests/remote/ferry-remote start && eval "$(tests/remote/ferry-remote env)"
#   bench/soak.sh [N]            # N deploys, default 100; remote user FERRY_SOAK_USER (ferry12)
set -eu
N=${1:-100}
USER_=${FERRY_SOAK_USER:-ferry12}
KEEP=3
: "${FERRY_TEST_HOST:?start the test remote and eval \"\$(tests/remote/ferry-remote env)\" first}"
cd "$(dirname "$0")/.."
cargo build --quiet --bin ferry
FERRY=$PWD/target/debug/ferry
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

rssh() {
    ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes \
        -o LogLevel=ERROR -o UserKnownHostsFile="$FERRY_TEST_KNOWN_HOSTS" -i "$FERRY_TEST_KEY" \
        -p "$FERRY_TEST_PORT" "$USER_@$FERRY_TEST_HOST" "$@"
}

# One line of figures about the user's side of the host (this measuring session included,
# the same every time).
measure() {
    rssh 'procs=$(ps -u "$(id -u)" --no-headers | wc -l)
          fds=0; for p in $(pgrep -u "$(id -u)"); do n=$(ls /proc/$p/fd 2>/dev/null | wc -l); fds=$((fds + n)); done
          tmp=$(find ~ \( -name ".ferry-tmp*" -o -name "*.ferry-part" -o -name "*.partial" \) 2>/dev/null | wc -l)
          systmp=$(find /tmp /var/tmp -user "$(id -u)" 2>/dev/null | wc -l)
          rels=$(ls ~/.local/share/ferry/soak/releases 2>/dev/null | wc -l)
          hist=$(wc -l < ~/.local/share/ferry/soak/history.jsonl 2>/dev/null || echo 0)
          units=$(systemctl --user list-units --all --no-legend "ferry-*" | wc -l)
          echo "$procs $fds $tmp $systmp $rels $hist $units"'
}

rssh 'systemctl --user stop soak.service ferry-revert-soak.timer ferry-revert-soak.service 2>/dev/null; rm -rf ~/.local/share/ferry/soak ~/.config/systemd/user/soak.service; systemctl --user daemon-reload; true'
cat > "$WORK/soak.service" <<'UNIT'
[Service]
ExecStart=/bin/sh -c 'cat %h/.local/share/ferry/soak/current/msg >/dev/null; exec sleep infinity'
UNIT
cat > "$WORK/deploy.toml" <<TOML
[hosts.soak]
address = "$FERRY_TEST_HOST"
port = $FERRY_TEST_PORT
user = "$USER_"
identity = "$FERRY_TEST_KEY"
known_hosts = "$FERRY_TEST_KNOWN_HOSTS"

[services.soak]
units = ["soak.service"]
start_timeout = "10s"
settle_time = "0.3s"
keep_releases = $KEEP

[[services.soak.files]]
source = "msg"
dest = "msg"

[[services.soak.files]]
source = "blob"
dest = "blob"

[services.soak.health]
command = "grep -q deploy msg"
timeout = "5s"
TOML
head -c 1048576 /dev/urandom > "$WORK/blob"
deploy() {
    echo "deploy $1 $(date +%s%N)" > "$WORK/msg"
    # Every 10th deploy also changes the 1 MiB blob (uploaded), otherwise it is reused.
    [ $(($1 % 10)) -ne 0 ] || head -c 1048576 /dev/urandom > "$WORK/blob"
    (cd "$WORK" && "$FERRY" --config deploy.toml deploy >"$WORK/out" 2>&1) || {
        echo "deploy $1 failed:"; cat "$WORK/out"; exit 1; }
}

# Warm up (first deploy, a few more so releases reach keep_releases), then measure.
for i in 1 2 3 4 5; do deploy "$i"; done
before=$(measure)
start=$(date +%s.%N)
i=1
while [ "$i" -le "$N" ]; do deploy "w$i"; i=$((i + 1)); done
end=$(date +%s.%N)
after=$(measure)

set -- $before; b_procs=$1 b_fds=$2 b_tmp=$3 b_systmp=$4 b_rels=$5 b_hist=$6 b_units=$7
set -- $after;  a_procs=$1 a_fds=$2 a_tmp=$3 a_systmp=$4 a_rels=$5 a_hist=$6 a_units=$7
secs=$(echo "$end - $start" | bc)
printf '%-34s %8s %8s\n' "" before after
printf '%-34s %8s %8s\n' "processes of $USER_" "$b_procs" "$a_procs"
printf '%-34s %8s %8s\n' "their open files" "$b_fds" "$a_fds"
printf '%-34s %8s %8s\n' "temp files (tmp, part, partial)" "$b_tmp" "$a_tmp"
printf '%-34s %8s %8s\n' "files of $USER_ in /tmp, /var/tmp" "$b_systmp" "$a_systmp"
printf '%-34s %8s %8s\n' "releases (keep_releases = $KEEP)" "$b_rels" "$a_rels"
printf '%-34s %8s %8s\n' "ferry-* transient units" "$b_units" "$a_units"
printf '%-34s %8s %8s\n' "history lines" "$b_hist" "$a_hist"
echo "$N deploys in ${secs}s ($(echo "scale=2; $secs / $N" | bc)s each)"

fail=0
[ "$a_procs" -le "$b_procs" ] || { echo "GREW: processes"; fail=1; }
[ "$a_fds" -le "$b_fds" ] || { echo "GREW: open files"; fail=1; }
[ "$a_tmp" -eq 0 ] || { echo "LEFT: temp files"; fail=1; }
[ "$a_systmp" -le "$b_systmp" ] || { echo "GREW: /tmp files"; fail=1; }
[ "$a_rels" -le "$KEEP" ] || { echo "GREW: releases beyond keep_releases"; fail=1; }
[ "$a_units" -le "$b_units" ] || { echo "GREW: transient units"; fail=1; }
[ "$a_hist" -eq $((b_hist + N)) ] || { echo "history: expected $((b_hist + N)) lines"; fail=1; }
rssh 'systemctl --user stop soak.service; rm -rf ~/.local/share/ferry/soak ~/.config/systemd/user/soak.service; systemctl --user daemon-reload' || true
[ "$fail" -eq 0 ] && echo "soak: no growth"
exit "$fail"
