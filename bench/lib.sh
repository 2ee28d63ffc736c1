# Shared by the bench scripts (sourced): OpenSSH options for the test remote, a clock, a median.

# OpenSSH options for the test remote: its key, host key checking against KNOWN_HOSTS
# (default: the remote's known_hosts), no user config. Sets the array `ssh_opts`.
set_ssh_opts() {
  ssh_opts=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
            -o "UserKnownHostsFile=${1:-$FERRY_TEST_KNOWN_HOSTS}" -i "$FERRY_TEST_KEY" -o LogLevel=ERROR)
}

now() { date +%s.%N; }

# The median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
