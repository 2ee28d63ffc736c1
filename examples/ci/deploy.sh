#!/bin/sh
# deploy.sh: the deploy step of a CI job (GitHub Actions, GitLab CI, anything with sh).
#
#   examples/ci/deploy.sh [SERVICE]...      (default: every service of deploy.toml)
#
# Reads from the environment (set them from the CI's secrets):
#   FERRY_SSH_KEY      the private key, as text, or the path of a file holding it (GitLab
#                      "File" variables). Loaded into an ssh-agent started here, never written
#                      to disk; so leave `identity` unset in deploy.toml.
#   FERRY_KNOWN_HOSTS  the hosts' known_hosts lines (`ssh-keyscan -p PORT HOST`, checked once
#                      by hand), as text or a file path. Appended to ~/.ssh/known_hosts, which
#                      deploy.toml's `known_hosts` must be (its default).
#   FERRY_KEY_PASSPHRASE  only for an encrypted key.
#   FERRY              the ferry binary (default: ferry on PATH).
#   FERRY_OUT          where ferry's output goes (default: ferry-out): deploy.jsonl, the JSON
#                      Lines of the deploy (see docs/events.md), and on failure logs-SERVICE.txt,
#                      the journal of each service since this deploy. Keep it as an artifact.
#   FERRY_CONFIG       deploy.toml's path, as for ferry (default: ./deploy.toml).
#
# Exits with ferry's exit code: 0 ok, 1 failed, 2 config error, 3 connection, 4 rolled back,
# 5 locked (see README "Output and exit codes"), so the job fails when the deploy did.
set -eu

ferry=${FERRY:-ferry}
out=${FERRY_OUT:-ferry-out}

: "${FERRY_SSH_KEY:?set FERRY_SSH_KEY to the deploy key (a CI secret)}"
: "${FERRY_KNOWN_HOSTS:?set FERRY_KNOWN_HOSTS to the hosts known_hosts lines (a CI secret)}"

# A value or, when it names a file, that file's content.
value() {
    if [ -f "$1" ]; then cat "$1"; else printf '%s\n' "$1"; fi
}

mkdir -p "$out"
umask 077
mkdir -p "$HOME/.ssh"
touch "$HOME/.ssh/known_hosts"
value "$FERRY_KNOWN_HOSTS" | tr -d '\r' | while IFS= read -r line; do
    grep -qxF -- "$line" "$HOME/.ssh/known_hosts" || printf '%s\n' "$line" >> "$HOME/.ssh/known_hosts"
done

# The key goes into an agent of this job only, stopped on exit.
eval "$(ssh-agent -s)" > /dev/null
trap 'ssh-agent -k > /dev/null 2>&1 || true' EXIT
if ! value "$FERRY_SSH_KEY" | tr -d '\r' | ssh-add -q - 2> "$out/ssh-add.err"; then
    echo "deploy.sh: FERRY_SSH_KEY is not a usable private key: $(cat "$out/ssh-add.err")" >&2
    exit 2
fi
rm -f "$out/ssh-add.err"

# The deploy. JSON Lines go to the job's log and to $out/deploy.jsonl; progress to stderr.
set +e
"$ferry" --output json deploy "$@" > "$out/deploy.jsonl"
code=$?
set -e
cat "$out/deploy.jsonl"

if [ "$code" -ne 0 ]; then
    # The journal of each service deployed (named on the command line, or found in the results).
    services="$*"
    if [ -z "$services" ]; then
        services=$(sed -n 's/.*"type":"result","host":"[^"]*","service":"\([^"]*\)".*/\1/p' \
            "$out/deploy.jsonl" | sort -u)
    fi
    for service in $services; do
        echo "--- journal of $service since this deploy ($out/logs-$service.txt) ---" >&2
        "$ferry" logs "$service" --since-deploy > "$out/logs-$service.txt" 2>&1 || true
        cat "$out/logs-$service.txt" >&2
    done
    echo "deploy.sh: ferry deploy failed with exit code $code" >&2
fi
exit "$code"
