#!/bin/bash
# Start hook (as root): the hub's gpulab-client on the user's PATH (/usr/local/bin), unless the
# image has its own. It needs a python3 (any, standard library only).
set -eu
src=/etc/gpulab/hooks/bin/gpulab-client
[ -x "$src" ] && command -v python3 > /dev/null || exit 0
if [ ! -e /usr/local/bin/gpulab-client ]; then
    mkdir -p /usr/local/bin
    ln -s "$src" /usr/local/bin/gpulab-client
fi
