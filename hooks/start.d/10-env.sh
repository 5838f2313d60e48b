#!/bin/bash
# Start hook: write /etc/profile.d/00-gpulab.sh so SSH/login shells see the same
# key environment as the notebook server (PATH, CUDA/NVIDIA, LD_LIBRARY_PATH,
# TF_*/XLA_*, PIP_USER, plus the names listed in GPULAB_EXPORT_ENV, space separated).
set -eu

VENV_BIN=/opt/gpulab/venv/bin
OUT=${GPULAB_PROFILE_ENV:-/etc/profile.d/00-gpulab.sh}

# the server's PATH (gpulab-start runs this hook with the system's own)
server_path=${GPULAB_SERVER_PATH:-${PATH:-}}
case ":$server_path:" in
    *":$VENV_BIN:"*) ;;
    *) server_path="$VENV_BIN${server_path:+:$server_path}" ;;
esac

names=(PATH LD_LIBRARY_PATH LANG NVIDIA_VISIBLE_DEVICES NVIDIA_DRIVER_CAPABILITIES PIP_USER)
while read -r name; do
    case $name in CUDA_* | TF_* | XLA_*) names+=("$name") ;; esac
done < <(compgen -e | LC_ALL=C sort)
read -r -a extra <<< "${GPULAB_EXPORT_ENV:-}"
names+=("${extra[@]}")

declare -A seen=()
tmp=$(mktemp "$OUT.XXXXXX")
echo "# Written by gpulab start hook 10-env.sh at container start; do not edit." > "$tmp"
for name in "${names[@]}"; do
    if ! [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        echo "10-env.sh: ignoring invalid variable name '$name'" >&2
        continue
    fi
    [ -n "${seen[$name]:-}" ] && continue
    seen[$name]=1
    if [ "$name" = PATH ]; then
        value=$server_path
    else
        [ -n "${!name+set}" ] || continue
        value=${!name}
    fi
    printf "export %s='%s'\n" "$name" "${value//\'/\'\\\'\'}" >> "$tmp"
done
chmod 0644 "$tmp"
mv -f "$tmp" "$OUT"
