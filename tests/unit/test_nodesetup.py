"""gpulab node setup: daemon.json and the NVIDIA runtime's config, computed (checked on an H200 too)."""

from gpulab.backends.swarm import nodes as nodesetup
from gpulab.core.gpus.inventory import GPU

GPUS = [
    GPU(1, "GPU-bbb", "NVIDIA H100 80GB HBM3", 80 << 30),
    GPU(0, "GPU-aaa", "NVIDIA H100 80GB HBM3", 80 << 30),
]


def test_daemon_config_keeps_other_settings_and_replaces_old_gpus():
    existing = {
        "log-driver": "journald",
        "node-generic-resources": ["gpu=GPU-old", "fpga=F1"],
        "runtimes": {"crun": {"path": "crun"}},
    }
    config = nodesetup.daemon_config(existing, GPUS)
    assert config["node-generic-resources"] == ["fpga=F1", "gpu=GPU-aaa", "gpu=GPU-bbb"]
    assert (
        config["default-runtime"] == "nvidia"
        and config["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    )
    assert config["log-driver"] == "journald" and config["runtimes"]["crun"] == {"path": "crun"}
    assert existing["node-generic-resources"] == ["gpu=GPU-old", "fpga=F1"], (
        "the input is not changed"
    )


def test_runtime_config_sets_swarm_resource_once_at_top_level():
    stock = 'disable-require = false\n#swarm-resource = "DOCKER_RESOURCE_GPU"\n\n[nvidia-container-cli]\nldconfig = "@/sbin/ldconfig"\n'
    out = nodesetup.runtime_config(stock)
    assert out.count("swarm-resource") == 1 and 'swarm-resource = "DOCKER_RESOURCE_GPU"\n' in out
    assert out.index("swarm-resource") < out.index("[nvidia-container-cli]")
    fresh = nodesetup.runtime_config('[nvidia-container-runtime]\nlog-level = "info"\n')
    assert fresh.startswith('swarm-resource = "DOCKER_RESOURCE_GPU"\n[nvidia-container-runtime]')
    assert nodesetup.runtime_config(out) == out, "idempotent"


def test_node_labels():
    labels = nodesetup.node_labels(GPUS)
    assert labels == {"gpulab.gpu-count": "2", "gpulab.gpu-model": "NVIDIA-H100-80GB-HBM3"}
    assert (
        nodesetup.label_command("gpu1", labels)
        == "docker node update --label-add gpulab.gpu-count=2 --label-add gpulab.gpu-model=NVIDIA-H100-80GB-HBM3 gpu1"
    )


def node(role="worker", engine="26.1.5", state="ready", gpus=("GPU-a",), labels=None):
    return {
        "ID": "n1",
        "Description": {
            "Hostname": "gpu1",
            "Engine": {"EngineVersion": engine},
            "Resources": {
                "GenericResources": [
                    {"NamedResourceSpec": {"Kind": "gpu", "Value": g}} for g in gpus
                ]
            },
        },
        "Spec": {
            "Role": role,
            "Availability": "active",
            "Labels": {"gpulab.gpu-model": "A100", "gpulab.gpu-isolation": "swarm-resource"}
            if labels is None
            else labels,
        },
        "Status": {"State": state},
    }


def test_check_node_names_each_problem():
    assert nodesetup.check_node(node()) == ("gpu1", [])
    _, problems = nodesetup.check_node(
        node(engine="20.10.24+dfsg1", gpus=(), labels={}, state="down")
    )
    assert any("20.10.24" in p and "older than 23.0.3" in p for p in problems)
    assert "state is down" in problems and any("advertises no GPUs" in p for p in problems)
    _, problems = nodesetup.check_node(node(labels={"gpulab.gpu-isolation": "swarm-resource"}))
    assert problems == [
        "has no gpulab.gpu-model label (the command `gpulab node setup` prints adds it)"
    ]
    _, problems = nodesetup.check_node(node(labels={"gpulab.gpu-model": "A100"}))
    assert (
        len(problems) == 1
        and "not known to give each task only its own GPUs: it offers none" in problems[0]
    )
    assert nodesetup.check_node(node(role="manager", gpus=(), labels={})) == ("gpu1", []), (
        "a manager needs no GPUs"
    )
    assert nodesetup.at_least("NVIDIA Container Toolkit CLI version 1.19.1", nodesetup.MIN_TOOLKIT)
    assert not nodesetup.at_least(
        "NVIDIA Container Toolkit CLI version 1.17.8", nodesetup.MIN_TOOLKIT
    )


def test_a_node_offers_gpus_only_when_its_runtime_isolates_them():
    from gpulab.backends.swarm import cluster

    isolated, bare = node(), node(labels={"gpulab.gpu-model": "A100"})
    bare["ID"], bare["Description"]["Hostname"] = "n2", "gpu2"
    gpus, ids = cluster.gpus_from_nodes([isolated, bare])
    assert [g.node for g in gpus] == ["gpu1"] and set(ids) == {"gpu1", "gpu2"}
    assert nodesetup.runtime_isolates(
        nodesetup.runtime_config("")
    ) and not nodesetup.runtime_isolates('# swarm-resource = "x"')
    assert nodesetup.node_labels(GPUS, isolated=True)["gpulab.gpu-isolation"] == "swarm-resource"


def test_node_egress_rules_keep_tasks_off_the_node_and_the_lab():
    setup, hooks = nodesetup.egress_rules(["10.0.0.0/8", "203.0.113.0/24"], dns=["10.0.0.53"])
    text = [" ".join(a) for a in setup]
    assert "-A GPULAB-NODE-IN -j REJECT" in text and not any("--dport 8081" in t for t in text), (
        "nothing of the node"
    )
    assert "-A GPULAB-NODE-OUT -p udp -d 10.0.0.53 --dport 53 -j RETURN" in text
    assert text.index("-A GPULAB-NODE-OUT -d 10.0.0.0/8 -j REJECT") > text.index(
        "-A GPULAB-NODE-OUT -p udp -d 10.0.0.53 --dport 53 -j RETURN"
    )
    assert "-A GPULAB-NODE-OUT -d 203.0.113.0/24 -j REJECT" in text
    assert hooks == [
        ("INPUT", ["-i", "docker_gwbridge", "-j", "GPULAB-NODE-IN"]),
        ("DOCKER-USER", ["-i", "docker_gwbridge", "-j", "GPULAB-NODE-OUT"]),
    ]
