#!/bin/bash
# Start hook (as root): for a task of a multi-node GPU job (GPULAB_JOB_HOSTS set), the job's
# hostfile (/etc/gpulab/hostfile, one line per task: its host and slots = its GPUs) and what its
# tasks need to reach each other over SSH as the user: the job's own key (a Swarm secret, read
# here by root only, GPULAB_JOB_SECRET) as the user's identity, the SSH server's host key and the
# only authorized key, in /run/gpulab/job (a tmpfs, the user's, gone with the task). Nothing for
# a server or a one-node job.
set -eu
[ -n "${GPULAB_JOB_HOSTS:-}" ] || exit 0
dir=/run/gpulab/job
slots=${GPULAB_JOB_SLOTS:-1}
case $slots in '' | *[!0-9]*) echo "40-job.sh: bad GPULAB_JOB_SLOTS" >&2; exit 1 ;; esac
mkdir -p /etc/gpulab
: > /etc/gpulab/hostfile
for host in $GPULAB_JOB_HOSTS; do
    [[ $host =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ ]] || { echo "40-job.sh: bad host '$host'" >&2; exit 1; }
    echo "$host slots=$slots" >> /etc/gpulab/hostfile
done
chmod 0644 /etc/gpulab/hostfile

secret=${GPULAB_JOB_SECRET:-}
[ -n "$secret" ] && [ -f "$secret" ] || { echo "40-job.sh: the job's key is missing" >&2; exit 1; }
install -d -m 0700 -o "$NB_UID" -g "$NB_GID" "$dir"
install -m 0600 -o "$NB_UID" -g "$NB_GID" "$secret" "$dir/key"
pub=$(ssh-keygen -y -f "$dir/key")
umask 077
echo "$pub" > "$dir/authorized_keys"
echo "* $pub" > "$dir/known_hosts"
cat > "$dir/ssh_config" <<EOC
Host *
    Port 2222
    User $NB_USER
    IdentityFile $dir/key
    IdentitiesOnly yes
    UserKnownHostsFile $dir/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
    LogLevel ERROR
EOC
cat > "$dir/sshd_config" <<EOC
Port 2222
HostKey $dir/key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $NB_USER
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
PermitUserEnvironment no
AllowTcpForwarding no
X11Forwarding no
StrictModes no
EOC
chown "$NB_UID:$NB_GID" "$dir"/*
