"""The per-user SSH port on the host (the container side of SSH is in the spec, :mod:`..spec`)."""

MAX_PORT = 65535


def host_port(port_base, user_id):
    """A user's stable SSH port on the host: port_base + the hub's (never reused) user id."""
    port = int(port_base) + int(user_id)
    if port > MAX_PORT:
        raise ValueError(
            f"ssh port {port_base} + user id {user_id} is above {MAX_PORT}: lower ssh.port_base"
        )
    return port
