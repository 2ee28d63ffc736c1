#!/usr/bin/env bash
# ferry vs pyinfra, same work: a 20 MiB binary (new content each run) + 2 unit files to one
# host's systemd user directory, daemon-reload, restart. pyinfra is installed from PyPI into a
# virtualenv under target/ (pinned by $PYINFRA_VERSION, default 3.10.0).
#
#   sudo tests/remote/ferry-remote start && bench/pyinfra.sh
#
# ferry: `ferry deploy` with settle_time 0 (it still checks the unit started; pyinfra does not).
# pyinfra: `pyinfra -y inventory.py deploy.py` with files.put x3, systemd.daemon_reload and
# systemd.service(restarted=True), user_mode. Medians of $BENCH_RUNS (default 5). User
# $BENCH_USER (default ferry12).
set -euo pipefail
cd "$(dirname "$0")/.."
user=${BENCH_USER:-ferry12}
runs=${BENCH_RUNS:-5}
remote=tests/remote/ferry-remote
eval "$("$remote" env)"
cargo build --release --quiet
ferry=$PWD/target/release/ferry
venv=$PWD/target/pyinfra-venv
if [[ ! -x $venv/bin/pyinfra ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "pyinfra==${PYINFRA_VERSION:-3.10.0}"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. bench/lib.sh
home=$("$remote" ssh "$user" 'printf %s "$HOME"')

clean_host() {
  "$remote" ssh "$user" 'systemctl --user stop pybench.service pybench.socket pyfbench.service pyfbench.socket 2>/dev/null; systemctl --user disable pybench.socket pyfbench.socket 2>/dev/null; rm -rf ~/.local/share/ferry/pyfbench ~/pybench ~/.config/systemd/user/pybench.* ~/.config/systemd/user/pyfbench.*; systemctl --user daemon-reload' >/dev/null 2>&1 || true
}
clean_host

for name in pybench pyfbench; do
  printf '[Unit]\nRequires=%s.socket\nAfter=%s.socket\n[Service]\nExecStart=/bin/sleep infinity\n' "$name" "$name" >"$work/$name.service"
  printf '[Socket]\nListenStream=%%t/%s.sock\n[Install]\nWantedBy=sockets.target\n' "$name" >"$work/$name.socket"
done
cat >"$work/deploy.toml" <<TOML
[hosts.bench]
address = "$FERRY_TEST_HOST"
port = $FERRY_TEST_PORT
user = "$user"
identity = "$FERRY_TEST_KEY"
known_hosts = "$FERRY_TEST_KNOWN_HOSTS"

[services.pyfbench]
units = ["pyfbench.service", "pyfbench.socket"]
restart = ["pyfbench.service"]
keep_releases = 3
settle_time = "0s"

[[services.pyfbench.files]]
source = "app.bin"
dest = "bin/app"
mode = "0755"
TOML
cat >"$work/inventory.py" <<PY
hosts = [("$FERRY_TEST_HOST", {
    "ssh_port": $FERRY_TEST_PORT,
    "ssh_user": "$user",
    "ssh_key": "$FERRY_TEST_KEY",
    "ssh_known_hosts_file": "$FERRY_TEST_KNOWN_HOSTS",
    "ssh_strict_host_key_checking": "yes",
    "ssh_allow_agent": False,
    "ssh_look_for_keys": False,
})]
PY
cat >"$work/deploy.py" <<PY
from pyinfra.operations import files, systemd

files.directory(name="dirs", path="$home/pybench")
files.directory(name="unit dir", path="$home/.config/systemd/user")
files.put(name="binary", src="$work/app.bin", dest="$home/pybench/app", mode="755")
files.put(name="service", src="$work/pybench.service", dest="$home/.config/systemd/user/pybench.service")
files.put(name="socket", src="$work/pybench.socket", dest="$home/.config/systemd/user/pybench.socket")
systemd.daemon_reload(name="reload", user_mode=True)
systemd.service(name="restart", service="pybench.service", restarted=True, user_mode=True)
PY

ft=(); pt=()
for _ in $(seq "$runs"); do
  head -c $((20 * 1024 * 1024)) /dev/urandom >"$work/app.bin"
  t0=$(now); "$ferry" -q --config "$work/deploy.toml" deploy >/dev/null; t1=$(now)
  ft+=("$(echo "$t1 - $t0" | bc)")
  t0=$(now)
  (cd "$work" && "$venv/bin/pyinfra" -y inventory.py deploy.py >"$work/pyinfra.log" 2>&1) \
    || { echo "bench: pyinfra failed:" >&2; tail -20 "$work/pyinfra.log" >&2; exit 1; }
  t1=$(now)
  pt+=("$(echo "$t1 - $t0" | bc)")
done
"$remote" ssh "$user" 'systemctl --user is-active pybench.service pyfbench.service' | tr '\n' ' ' | grep -q '^active active' \
  || { echo "bench: a service is not running after its deploy" >&2; exit 1; }
f=$(printf '%s\n' "${ft[@]}" | median); p=$(printf '%s\n' "${pt[@]}" | median)
printf '%-52s %9s %9s %7s\n' "measure (median of $runs)" "ferry" "pyinfra" "ratio"
printf '%-52s %8.2fs %8.2fs %7.2f\n' "deploy 20 MiB + 2 units, restart (settle_time 0)" "$f" "$p" "$(echo "$f / $p" | bc -l)"
clean_host
