"""jupyter-server-proxy entry for SSH through the hub (group ``jupyter_serverproxy_servers``).

``/user/<name>/sshd/`` takes websocket connections only (``raw_socket_proxy``) and pipes
their binary messages to the container's own sshd on port 22, which the start hook
``30-sshd.sh`` runs. The user's server checks the hub token or cookie first, so
unauthenticated requests and other users get a login redirect or 403.
``gpulab-client ssh-proxy`` on the user's machine is the other end.
"""


def sshd():
    return {
        "port": 22,
        "raw_socket_proxy": True,
        "launcher_entry": {"enabled": False},
    }
