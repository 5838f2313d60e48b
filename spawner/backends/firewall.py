"""Where user containers may connect: the hub's API, DNS and the internet, not the host or the LAN.

For a bridge user containers reach the world through (the deployment's bridge on one host, with
``hub.restrict_egress``, on by default; ``docker_gwbridge`` on every node of a Swarm, written by
``gpulab node setup --write``), two iptables chains:

* **to the host** (INPUT): only the hub's API port on the bridge's gateway address (one host; a
  Swarm node allows nothing: the hub is reached over the overlays); every other service the host
  runs (sshd, NFS, a registry, the Swarm's ports, the Docker API on TCP, ...) is refused;
* **through the host** (DOCKER-USER, which Docker evaluates before its own rules): the blocked
  ranges (``hub.egress_blocked``: by default the private and link-local ranges: the lab's LAN,
  other Docker networks, other nodes, cloud metadata at 169.254.169.254) are refused, except the
  host's DNS servers; the internet stays reachable (``pip install``).

Replies to connections the hub or the proxy open to a container are always allowed. The rules
are rebuilt at every start (idempotent); :func:`rules` is pure and unit-tested.
"""

import ipaddress
import subprocess

from ..core.site import default

BLOCKED = tuple(default("hub.egress_blocked"))


class FirewallError(RuntimeError):
    pass


def chain_names(deployment):
    base = "GPULAB-" + deployment.upper().replace("_", "-")
    return base[:24] + "-IN", base[:24] + "-OUT"


def dns_servers(resolv_conf="/etc/resolv.conf"):
    """IPv4 name servers the host uses (containers' DNS goes to them)."""
    out = []
    try:
        with open(resolv_conf) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    try:
                        addr = ipaddress.ip_address(parts[1])
                    except ValueError:
                        continue
                    if addr.version == 4 and not addr.is_loopback:
                        out.append(str(addr))
    except OSError:
        pass
    return out


def rules(deployment, bridge, gateway, api_port, dns=(), blocked=BLOCKED):
    """The iptables argument lists, in order: create/flush the chains, fill them, hook them in.
    ``gateway`` None: nothing on the host is allowed (a Swarm node)."""
    chain_in, chain_out = chain_names(deployment)
    setup = [
        ["-N", chain_in],
        ["-F", chain_in],
        ["-A", chain_in, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
    ]
    if gateway:
        setup.append(
            ["-A", chain_in, "-p", "tcp", "-d", gateway, "--dport", str(api_port), "-j", "RETURN"]
        )
    setup += [
        ["-A", chain_in, "-j", "REJECT"],
        ["-N", chain_out],
        ["-F", chain_out],
        ["-A", chain_out, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
    ]
    for server in dns:
        for proto in ("udp", "tcp"):
            setup.append(
                ["-A", chain_out, "-p", proto, "-d", server, "--dport", "53", "-j", "RETURN"]
            )
    for net in blocked:
        setup.append(["-A", chain_out, "-d", net, "-j", "REJECT"])
    setup.append(["-A", chain_out, "-j", "RETURN"])
    hooks = [
        ("INPUT", ["-i", bridge, "-j", chain_in]),
        ("DOCKER-USER", ["-i", bridge, "-j", chain_out]),
    ]
    return setup, hooks


def _run(args, check=True):
    proc = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise FirewallError(f"iptables {' '.join(args)}: {proc.stderr.strip()}")
    return proc.returncode == 0


def apply(deployment, bridge, gateway, api_port, dns=None, blocked=BLOCKED):
    """Install (or refresh) the rules. Raises FirewallError naming the failing command."""
    install(
        *rules(
            deployment, bridge, gateway, api_port, dns_servers() if dns is None else dns, blocked
        )
    )


def install(setup, hooks):
    """Create and fill the chains of :func:`rules`, then hook them in once (idempotent)."""
    for args in setup:
        _run(
            args, check=args[0] != "-N"
        )  # -N fails when the chain exists: fine, it is flushed next
    for chain, spec in hooks:
        if not _run(["-C", chain, *spec], check=False):
            _run(["-I", chain, "1", *spec])


def remove(deployment, bridge):
    """Take the rules out again (tests, uninstall)."""
    chain_in, chain_out = chain_names(deployment)
    for chain, target in (("INPUT", chain_in), ("DOCKER-USER", chain_out)):
        while _run(["-D", chain, "-i", bridge, "-j", target], check=False):
            pass
    for chain in (chain_in, chain_out):
        _run(["-F", chain], check=False)
        _run(["-X", chain], check=False)


def bridge_of(network):
    """The Linux bridge of a Docker bridge network (docker-py Network)."""
    return (network.attrs.get("Options") or {}).get(
        "com.docker.network.bridge.name"
    ) or "br-" + network.id[:12]
