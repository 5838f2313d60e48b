#!/bin/bash
# Start hook: run sshd in the user's container when the spawner set GPULAB_SSH=1.
# - host keys live in the per-user volume at /etc/gpulab/ssh-host (generated once,
#   so they survive restarts and image rebuilds);
# - keys come from the hub at every login (AuthorizedKeysCommand ssh/authorized-keys,
#   with this server's own API token: only this user's keys, always current);
# - the container password hash (if any) comes from the hub when password logins
#   are allowed (GPULAB_SSH_PASSWORD_LOGIN=1); root logins are always refused;
# - SSH sessions get the notebook's environment (SetEnv from /etc/profile.d/0*-gpulab*.sh);
# - ssh/activity reports open SSH sessions to the hub as activity.
set -eu
[ "${GPULAB_SSH:-0}" = 1 ] || exit 0
: "${NB_USER:?}" "${JUPYTERHUB_API_TOKEN:?}" "${JUPYTERHUB_API_URL:?}"

HERE=/etc/gpulab/hooks/ssh
KEYS=${GPULAB_SSH_HOST_KEYS:-/etc/gpulab/ssh-host}
CONF=/etc/gpulab/ssh
RUNTIME=/etc/ssh/sshd_config.d/00-gpulab-runtime.conf
SVC=gpulab-ssh

getent passwd "$SVC" >/dev/null || useradd -r -M -d /nonexistent -s /usr/sbin/nologin "$SVC"
# sshd runs AuthorizedKeysCommand only from root-owned, non-writable paths
chown root:root "$HERE" "$HERE"/*
chmod 0755 "$HERE" "$HERE"/authorized-keys "$HERE"/activity

# Stable host keys: generated once per user, kept in their volume. No RSA key: every
# current OpenSSH client speaks ed25519, and RSA generation would slow the first start.
mkdir -p "$KEYS"
chmod 0700 "$KEYS"
for t in ed25519 ecdsa; do
    f="$KEYS/ssh_host_${t}_key"
    [ -s "$f" ] && [ -s "$f.pub" ] && continue
    rm -f "$f" "$f.pub"
    ssh-keygen -q -t "$t" -N "" -C "gpulab-$NB_USER" -f "$f"
done
chmod 0600 "$KEYS"/ssh_host_*_key

# What the helper scripts need to ask the hub: readable by root and $SVC only.
install -d -m 0750 -g "$SVC" "$CONF"
umask 027
printf '%s' "$JUPYTERHUB_API_TOKEN" > "$CONF/token"
# JSON written by Python from the environment (a hub user name may hold any character)
/usr/bin/python3 -I -c 'import json, os, sys
json.dump({"api_url": os.environ["JUPYTERHUB_API_URL"], "user": os.environ.get("JUPYTERHUB_USER", ""),
           "server": os.environ.get("JUPYTERHUB_SERVER_NAME", ""), "login": os.environ["NB_USER"],
           "interval": int(os.environ.get("GPULAB_SSH_ACTIVITY_INTERVAL") or 60)}, sys.stdout)' > "$CONF/settings.json"
chgrp "$SVC" "$CONF/token" "$CONF/settings.json"
umask 022

# The container password, only when password logins are allowed.
password=no
if [ "${GPULAB_SSH_PASSWORD_LOGIN:-0}" = 1 ]; then
    password=yes
    hash=$(setpriv --reuid="$SVC" --regid="$SVC" --clear-groups -- /usr/bin/python3 -I "$HERE/authorized-keys" --password-hash) \
        || { echo "30-sshd.sh: could not read the password from the hub" >&2; hash=; }
    if [[ $hash == '$2b$'* ]]; then usermod -p "$hash" "$NB_USER"; fi
fi

setenv_word() {  # NAME=value for sshd's SetEnv, double-quoted when needed
    local name=$1 value=$2
    if [[ $value == *[$'\n\r\t"\\']* ]]; then
        echo "30-sshd.sh: not passing $name to SSH sessions (unsupported characters)" >&2
    elif [[ $value =~ ^[A-Za-z0-9_./:,=+@%~-]*$ ]]; then
        printf ' %s=%s' "$name" "$value"
    else
        printf ' "%s=%s"' "$name" "$value"
    fi
}

tmp=$(mktemp "$RUNTIME.XXXXXX")
{
    echo "# Written by gpulab start hook 30-sshd.sh; do not edit."
    for t in ed25519 ecdsa; do echo "HostKey $KEYS/ssh_host_${t}_key"; done
    echo "PermitRootLogin no"
    echo "AllowUsers $NB_USER"
    echo "PasswordAuthentication $password"
    echo "KbdInteractiveAuthentication no"
    # what labs use SSH for: port forwarding (-L/-R, VS Code Remote-SSH), X11 (ssh -X); sftp is
    # the image's default subsystem;
    # remote forwards listen on the container's loopback only
    echo "AllowTcpForwarding $([ "${GPULAB_SSH_TCP_FORWARDING:-1}" = 1 ] && echo yes || echo no)"
    echo "X11Forwarding $([ "${GPULAB_SSH_X11_FORWARDING:-1}" = 1 ] && echo yes || echo no)"
    echo "X11UseLocalhost yes"
    echo "AddressFamily inet"  # the container's loopback may have no IPv6: sshd could not open X11 displays
    echo "GatewayPorts no"
    echo "PermitTunnel no"
    echo "AuthorizedKeysFile none"  # only the keys the hub knows: removing one on the SSH page revokes it
    echo "AuthorizedKeysCommand $HERE/authorized-keys %u"
    echo "AuthorizedKeysCommandUser $SVC"
    # the notebook's environment (the files 10-env.sh and 20-user-env.sh wrote), on one
    # SetEnv line: sshd keeps only the first SetEnv directive
    profiles=(/etc/profile.d/00-gpulab.sh /etc/profile.d/01-gpulab-user.sh)
    words=
    while IFS= read -r -d '' pair; do
        words+=$(setenv_word "${pair%%=*}" "${pair#*=}")
    done < <(env -i /bin/bash -c '
        names=()
        for f in "$@"; do
            [ -f "$f" ] || continue
            . "$f"
            names+=($(sed -nE "s/^export ([A-Za-z_][A-Za-z0-9_]*)=.*/\1/p" "$f"))
        done
        for n in $(printf "%s\n" "${names[@]}" | sort -u); do printf "%s=%s\0" "$n" "${!n}"; done' _ "${profiles[@]}")
    [ -z "$words" ] || echo "SetEnv$words"
} > "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$RUNTIME"

mkdir -p /run/sshd
/usr/sbin/sshd -t
/usr/sbin/sshd -E /var/log/gpulab-sshd.log
setsid setpriv --reuid="$SVC" --regid="$SVC" --clear-groups -- \
    /usr/bin/python3 -I "$HERE/activity" >> /var/log/gpulab-ssh-activity.log 2>&1 < /dev/null &
echo "30-sshd.sh: sshd started for $NB_USER (password logins: $password)" >&2
