#!/bin/bash
# Start hook: run sshd in the user's container when the spawner set GPULAB_SSH=1.
# - host keys live in the per-user volume at /etc/gpulab/ssh-host (generated once,
#   so they survive restarts and image rebuilds);
# - keys come from the hub at every login (AuthorizedKeysCommand ssh/authorized-keys,
#   with this server's own API token: only this user's keys, always current);
# - a password (when the admin allows password logins, GPULAB_SSH_PASSWORD_LOGIN=1) is checked
#   at each login against the hash the hub holds (PAM: ssh/check-password), never kept in
#   /etc/shadow: a password removed on the hub stops working at once, also in saved images;
#   root logins are always refused;
# - what the helpers need to ask the hub (the server's token) lives in the tmpfs /run/gpulab,
#   never in a layer a saved environment could keep;
# - SSH sessions get the notebook's environment (SetEnv from /etc/profile.d/0*-gpulab*.sh);
# - ssh/activity reports open SSH sessions to the hub as activity.
set -eu
[ "${GPULAB_SSH:-0}" = 1 ] || exit 0
: "${NB_USER:?}" "${JUPYTERHUB_API_TOKEN:?}" "${JUPYTERHUB_API_URL:?}"

HERE=/etc/gpulab/hooks/ssh
KEYS=${GPULAB_SSH_HOST_KEYS:-/etc/gpulab/ssh-host}
CONF=/run/gpulab/ssh
RUNTIME=/etc/ssh/sshd_config.d/00-gpulab-runtime.conf  # a tmpfs of this container's own
SVC=gpulab-ssh

getent passwd "$SVC" >/dev/null || useradd -r -M -d /nonexistent -s /usr/sbin/nologin "$SVC"
# sshd runs AuthorizedKeysCommand only from root-owned, non-writable paths (the hub's read-only
# boot mount is; an image's own copy is made so)
if [ -w "$HERE" ]; then
    chown root:root "$HERE" "$HERE"/*
    chmod 0755 "$HERE" "$HERE"/authorized-keys "$HERE"/activity "$HERE"/check-password
    chmod 0644 "$HERE"/pam-sshd
fi

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
install -d -m 0755 "$(dirname "$CONF")"
install -d -m 0750 -g "$SVC" "$CONF"
umask 027
printf '%s' "$JUPYTERHUB_API_TOKEN" > "$CONF/token"
# JSON written by Python from the environment (a hub user name may hold any character)
/usr/bin/python3 -IS -c 'import json, os, sys
json.dump({"api_url": os.environ["JUPYTERHUB_API_URL"], "user": os.environ.get("JUPYTERHUB_USER", ""),
           "server": os.environ.get("JUPYTERHUB_SERVER_NAME", ""), "login": os.environ["NB_USER"],
           "interval": int(os.environ.get("GPULAB_SSH_ACTIVITY_INTERVAL") or 60)}, sys.stdout)' > "$CONF/settings.json"
chgrp "$SVC" "$CONF/token" "$CONF/settings.json"
umask 022

# No password in /etc/shadow, ever (an image saved from an older container may hold one: twice,
# so that usermod's backup /etc/shadow- holds none either).
if [ "$(getent shadow "$NB_USER" | cut -d: -f2)" != '!' ]; then
    usermod -p '!' "$NB_USER" && usermod -p '!' "$NB_USER"
fi
# Password logins, only when the admin allows them: checked against the hub at each login by
# sshd's PAM stack, the hub's read-only ssh/pam-sshd (an image's own copy only where the hub
# mounts none).
password=no
if [ "${GPULAB_SSH_PASSWORD_LOGIN:-0}" = 1 ]; then
    password=yes
    if [ -w /etc/pam.d/sshd ]; then install -m 0644 "$HERE/pam-sshd" /etc/pam.d/sshd; fi
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
    /usr/bin/python3 -IS "$HERE/activity" >> /var/log/gpulab-ssh-activity.log 2>&1 < /dev/null &
echo "30-sshd.sh: sshd started for $NB_USER (password logins: $password)" >&2
