#!/bin/bash
# Start hook: a user's own overrides of gpulab's environment defaults, from
# ~/.config/gpulab/env (lines NAME=value; '#' comments; a leading ~/ in a value
# means the home). Only these names are accepted: TF_*, XLA_*, JAX_*,
# GPULAB_TENSORBOARD_LOGDIR, PIP_USER. The file is read as the user (never as root)
# and written, quoted, to /run/gpulab/user-env.sh (gpulab-start sources it before
# starting Jupyter, so kernels, terminals and TensorBoard see it) and to
# /etc/profile.d/01-gpulab-user.sh (after 00-gpulab.sh: SSH and login shells).
set -eu

SRC="$NB_HOME/.config/gpulab/env"
OUT=${GPULAB_USER_ENV:-/run/gpulab/user-env.sh}  # a tmpfs: never in a saved layer
PROFILE=${GPULAB_USER_PROFILE:-/etc/profile.d/01-gpulab-user.sh}

rm -f "$OUT" "$PROFILE"
content=$(setpriv --reuid="$NB_UID" --regid="$NB_GID" --init-groups -- \
          cat -- "$SRC" 2>/dev/null | head -c 65536) || true
[ -n "$content" ] || exit 0

tmp=$(mktemp "$OUT.XXXXXX")
echo "# Written by gpulab start hook 20-user-env.sh from $SRC; do not edit." > "$tmp"
while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    if ! [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
        echo "20-user-env.sh: $SRC: ignoring line '$line'" >&2
        continue
    fi
    name=${BASH_REMATCH[2]} value=${BASH_REMATCH[3]}
    case $name in
        TF_* | XLA_* | JAX_* | GPULAB_TENSORBOARD_LOGDIR | PIP_USER) ;;
        *) echo "20-user-env.sh: $SRC: $name is not one of TF_*, XLA_*, JAX_*, GPULAB_TENSORBOARD_LOGDIR, PIP_USER; ignored" >&2
           continue ;;
    esac
    if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then value=${BASH_REMATCH[1]}; fi
    [[ $value == "~/"* ]] && value="$NB_HOME/${value#\~/}"
    printf "export %s='%s'\n" "$name" "${value//\'/\'\\\'\'}" >> "$tmp"
done <<< "$content"
chmod 0644 "$tmp"
cp "$tmp" "$PROFILE"
mv -f "$tmp" "$OUT"
