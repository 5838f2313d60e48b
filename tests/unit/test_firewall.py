"""Where containers may connect: the rules, computed without touching the host."""

from gpulab.backends import firewall


def test_rules_allow_the_hub_api_and_refuse_the_host_and_private_ranges():
    setup, hooks = firewall.rules(
        "lab", "br-0123456789ab", "172.30.240.1", 8081, dns=("10.255.255.53",)
    )
    text = [" ".join(a) for a in setup]
    chain_in, chain_out = firewall.chain_names("lab")
    assert f"-A {chain_in} -p tcp -d 172.30.240.1 --dport 8081 -j RETURN" in text
    assert text.index(f"-A {chain_in} -p tcp -d 172.30.240.1 --dport 8081 -j RETURN") < text.index(
        f"-A {chain_in} -j REJECT"
    )
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"):
        assert f"-A {chain_out} -d {net} -j REJECT" in text
    dns = text.index(f"-A {chain_out} -p udp -d 10.255.255.53 --dport 53 -j RETURN")
    assert dns < text.index(f"-A {chain_out} -d 10.0.0.0/8 -j REJECT"), (
        "the host's DNS server stays reachable"
    )
    assert text[-1] == f"-A {chain_out} -j RETURN", "the internet stays reachable"
    assert hooks == [
        ("INPUT", ["-i", "br-0123456789ab", "-j", chain_in]),
        ("DOCKER-USER", ["-i", "br-0123456789ab", "-j", chain_out]),
    ]
    assert all(len(c) <= 28 for c in firewall.chain_names("a-very-long-deployment-name-indeed"))


def test_dns_servers_from_resolv_conf(tmp_path):
    f = tmp_path / "resolv.conf"
    f.write_text(
        "# comment\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver fe80::1\nsearch lab\n"
    )
    assert firewall.dns_servers(str(f)) == ["10.255.255.53"]
