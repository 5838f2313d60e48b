"""Ready-to-paste ``~/.ssh/config`` entries for the two ways in."""

import shlex
from urllib.parse import urlparse


def _arg(value):
    """A ProxyCommand argument: shell-quoted, with ssh's % tokens escaped."""
    return shlex.quote(value).replace("%", "%%")


def ssh_config(
    *, username, login, hub_url, direct_host, direct_port, token_file="~/.config/gpulab/token"
):
    """Text for ~/.ssh/config. Both entries share a HostKeyAlias: it is the same container."""
    host = urlparse(hub_url).hostname or "hub"
    alias = f"gpulab-{host.split('.')[0]}-{login}"
    blocks = []
    if direct_port:
        blocks.append(
            f"# Way 1: direct port\nHost {alias}\n    HostName {direct_host}\n    Port {direct_port}\n    User {login}\n    HostKeyAlias {alias}\n"
        )
    blocks.append(
        f"# Way 2: through the hub ({hub_url})\nHost {alias}-hub\n    HostName {host}\n    User {login}\n"
        f"    HostKeyAlias {alias}\n"
        f"    ProxyCommand gpulab-client ssh-proxy --hub {_arg(hub_url)} --user {_arg(username)} --token-file {token_file}\n"
        "    ServerAliveInterval 30\n"
    )
    return "\n".join(blocks), alias
