"""GPU jobs as pure values: what a request may ask (a 400 naming the field), time limits, the
holder in the GPU table, the container's command and how a job ended."""

import pytest

from gpulab.core import gpujobs
from gpulab.core.gpujobs import JobInputError, validate_job
from gpulab.core.site.model import job_defaults

PROFILES = [
    {"name": "base", "image": "localhost/gpulab/base:latest", "max_gpus": 2},
    {"name": "big", "image": "localhost/gpulab/base:latest", "max_gpus": 8},
]


def check(body, saves=None, **kw):
    limits = {**job_defaults(), **kw}
    return validate_job(body, profiles=PROFILES, default_profile="base", limits=limits, saves=saves)


def test_a_valid_request_takes_the_defaults():
    r = check({"command": ["python", "train.py", "--lr", "3e-4"]})
    assert r.command == ("python", "train.py", "--lr", "3e-4")
    assert (r.gpus, r.nodes, r.profile["name"], r.save) == (1, 1, "base", "")
    assert r.hours == job_defaults()["default_hours"] and r.timeout == r.hours * 3600
    shell = check({"command": "python train.py > out.txt", "gpus": 2, "time": "90m"})
    assert shell.command == ("bash", "-lc", "python train.py > out.txt")
    assert shell.gpus == 2 and shell.hours == 1.5
    saved = check({"command": ["x"], "save": "20260101-1200"}, saves={"20260101-1200": "big"})
    assert saved.profile["name"] == "big" and saved.save == "20260101-1200"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"command": []}, "command"),
        ({"command": ""}, "command"),
        ({"command": ["  "]}, "command"),
        ({"command": [1, 2]}, "command"),
        ({"command": ["a\0b"]}, "command"),
        ({"command": ["x" * 70000]}, "command"),
        ({"command": ["x"], "gpus": 0}, "gpus"),
        ({"command": ["x"], "gpus": 3}, "gpus"),  # base allows 2
        ({"command": ["x"], "gpus": "2"}, "gpus"),
        ({"command": ["x"], "gpus": True}, "gpus"),
        ({"command": ["x"], "profile": "nope"}, "profile"),
        ({"command": ["x"], "save": "nope"}, "save"),
        ({"command": ["x"], "time": "73h"}, "time"),
        ({"command": ["x"], "time": "soon"}, "time"),
        ({"command": ["x"], "time": 0}, "time"),
        ({"command": ["x"], "time": "-1h"}, "time"),
        ({"command": ["x"], "nodes": 2}, "nodes"),  # one host
        ({"command": ["x"], "name": "<script>"}, "name"),
        ({"command": ["x"], "gpu": 1}, "gpu"),
        ([], "body"),
    ],
)
def test_bad_input_names_the_field(body, field):
    with pytest.raises(JobInputError) as e:
        check(body)
    assert e.value.field == field and str(e.value).startswith(f"{field}: ")


def test_limits_come_from_the_jobs_section():
    with pytest.raises(JobInputError, match="over the limit of 4 per job"):
        check({"command": ["x"], "gpus": 5, "profile": "big"}, max_gpus=4)
    assert check({"command": ["x"], "gpus": 8, "profile": "big"}).gpus == 8
    with pytest.raises(JobInputError, match="over the limit of 2h"):
        check({"command": ["x"], "time": "3h"}, max_hours=2, default_hours=1)
    assert gpujobs.parse_hours("2d") == 48 and gpujobs.parse_hours(1.5) == 1.5
    assert gpujobs.format_hours(48) == "48h" and gpujobs.format_hours(0.5) == "30m"


def test_the_site_file_refuses_a_default_over_the_limit():
    from gpulab.core.site.model import check_jobs
    from gpulab.core.site.schema import ConfigError

    with pytest.raises(ConfigError, match="jobs.default_hours"):
        check_jobs({"max_hours": 10, "default_hours": 24})


def test_a_job_is_never_a_server_in_the_gpu_table_and_runs_through_the_runner():
    h = gpujobs.holder("alice", 12)
    assert h == ("alice", "job/12") and gpujobs.is_job_holder(h) and gpujobs.job_id_of(h) == 12
    assert not gpujobs.is_job_holder(("alice", "")) and not gpujobs.is_job_holder(("a", "job"))
    assert gpujobs.runner_command(12, ("python", "-c", "1")) == (
        gpujobs.RUNNER,
        "12",
        "--",
        "python",
        "-c",
        "1",
    )
    assert gpujobs.container_name("lab", 12) == "lab-job-12"


def test_how_a_job_ended():
    assert gpujobs.outcome(0) == (gpujobs.SUCCEEDED, "exit status 0")
    assert gpujobs.outcome(3) == (gpujobs.FAILED, "exit status 3")
    assert gpujobs.outcome(None, timed_out=True)[0] == gpujobs.TIMED_OUT
    assert gpujobs.outcome(143, cancelled=True) == (gpujobs.CANCELLED, "cancelled")


def test_a_multi_node_task_knows_the_jobs_shape_and_is_rendered_as_a_held_swarm_job():
    from gpulab.backends import container
    from gpulab.backends.swarm.gang import task_args
    from gpulab.core import contract
    from gpulab.core import spec as specs
    from gpulab.core.job import job_from_spec

    from .test_spec import build

    hosts = ["lab-job-7-0", "lab-job-7-1"]
    assert gpujobs.hostfile(hosts, 2) == "lab-job-7-0 slots=2\nlab-job-7-1 slots=2\n"
    env = gpujobs.task_env(hosts, 1, 2, "10.0.9.0/24")
    assert env["MASTER_ADDR"] == "lab-job-7-0" and env["NODE_RANK"] == "1"
    assert env["WORLD_SIZE"] == "4" and env["NPROC_PER_NODE"] == "2" and env["NNODES"] == "2"
    assert env[contract.JOB_HOSTS] == "lab-job-7-0 lab-job-7-1" and env[contract.JOB_RANK] == "1"
    assert env["OMPI_MCA_btl_tcp_if_include"] == "10.0.9.0/24" == env["OMPI_MCA_oob_tcp_if_include"]
    assert env["OMPI_MCA_plm_rsh_agent"] == gpujobs.RSH_AGENT

    spec = build(
        name="lab-job-7-1",
        command=gpujobs.runner_command(7, ["python", "train.py"]),
        gpus=specs.GPUGrant.counted(2),
        network="lab-job-7-net",
        base_env=env,
    )
    kw = task_args(spec, "node-id-w2", {"ID": "sec1", "Name": "lab-job-7-key"}, 30)
    task = kw["task_template"]
    assert kw["mode"] == {"ReplicatedJob": {}}  # one task, run once
    assert task["Placement"]["Constraints"] == ["node.id==node-id-w2"]
    assert task["Resources"]["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "gpu", "Value": 2}}
    ]
    cs = task["ContainerSpec"]
    assert cs["Hostname"] == "lab-job-7-1" and cs["Args"][:3] == [gpujobs.RUNNER, "7", "--"]
    assert cs["Secrets"] == [
        {
            "SecretID": "sec1",
            "SecretName": "lab-job-7-key",
            "File": {"Name": "lab-job-7-key", "UID": "0", "GID": "0", "Mode": 0o400},
        }
    ]
    assert cs["StopGracePeriod"] == 30 * 10**9
    assert cs["CapabilityDrop"] == ["ALL"] and cs["Privileges"]["NoNewPrivileges"] is True
    assert task["Networks"] == [{"Target": "lab-job-7-net"}]
    # one host: a job is the server's container, run to its end
    job = job_from_spec(
        build(gpus=specs.GPUGrant.devices(("GPU-1",))), kind="user", timeout=60, stop_grace=30
    )
    create, host = container.job_arguments(job)
    assert create["labels"][contract.L_JOB] == "user" and host["init"] is True
    assert [r["DeviceIDs"] for r in host["device_requests"]] == [["GPU-1"]]
    assert host["cap_drop"] == ["ALL"] and host["security_opt"] == ["no-new-privileges:true"]


def test_a_notebook_job_runs_papermill_with_its_parameters_next_to_the_notebook():
    r = check({"notebook": "work/train.ipynb", "parameters": {"lr": 0.0003, "name": "a b"}})
    assert r.command_for(12) == (
        *gpujobs.PAPERMILL,
        "--log-output",
        "-y",
        '{"lr": 0.0003, "name": "a b"}',
        "work/train.ipynb",
        "work/train.job12.ipynb",
    )
    assert check({"command": ["x"]}).command_for(3) == ("x",)
    for body, field in (
        ({"notebook": "/etc/passwd.ipynb"}, "notebook"),
        ({"notebook": "../bob/x.ipynb"}, "notebook"),
        ({"notebook": "train.py"}, "notebook"),
        ({"notebook": "a.ipynb", "command": ["x"]}, "command"),
        ({"notebook": "a.ipynb", "parameters": {"not a name": 1}}, "parameters"),
        ({"notebook": "a.ipynb", "parameters": {"lr": [1, 2]}}, "parameters"),
        ({"command": ["x"], "parameters": {"lr": 1}}, "parameters"),
    ):
        with pytest.raises(JobInputError) as e:
            check(body)
        assert e.value.field == field, (body, e.value)


def test_the_kept_output_is_completed_with_the_engines_last_lines():
    from gpulab.hub.gpujobs import completed

    assert completed(["a", "b"], ["a", "b"]) == ["a", "b"]
    assert completed(["a", "b"], ["a", "b", "c"]) == ["a", "b", "c"]  # the stream was one short
    assert completed(["x", "b"], ["b", "c", "d"]) == ["x", "b", "c", "d"]
    assert completed(["x"], ["c", "d"]) == ["x", "(…)", "c", "d"]  # a flood: a gap, marked
    assert completed([], ["c"]) == ["c"] and completed(["a"], []) == ["a"]
