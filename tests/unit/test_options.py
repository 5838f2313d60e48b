import pytest

from gpulab.core.gpus.inventory import GPU
from gpulab.core.options import OptionError, options_from_form, validate_options
from gpulab.core.site.model import validate_site

INVENTORY = [GPU(0, "GPU-aaaa", "T4", 16 << 30), GPU(1, "GPU-bbbb", "T4", 16 << 30)]

PROFILES = validate_site(
    {
        "auth": {"admin_users": ["a"]},
        "profiles": [
            {"name": "base", "image": "localhost/gpulab/base:latest"},
            {"name": "torch", "image": "localhost/gpulab/pytorch:latest", "gpus": 1, "max_gpus": 2},
        ],
    }
)["profiles"]


def check(options, **kw):
    kw.setdefault("inventory", INVENTORY)
    return validate_options(options, PROFILES, "base", **kw)


def test_defaults_to_default_profile():
    req = check({})
    assert req.profile["name"] == "base" and req.gpus == 0
    assert check(None).profile["name"] == "base"


def test_profile_default_gpus_and_override():
    assert check({"profile": "torch"}).gpus == 1
    assert check({"profile": "torch", "gpus": 2}).gpus == 2
    assert check({"profile": "torch", "gpus": "0"}).gpus == 0


@pytest.mark.parametrize(
    "options, field, text",
    [
        ({"profile": "evil"}, "profile", "not an offered profile"),
        ({"profile": 3}, "profile", "must be a string"),
        ({"profile": "x" * 5000}, "profile", "longer than"),
        ({"image": "ubuntu"}, "image", "unknown option"),
        ({"profile": "torch", "gpus": 3}, "gpus", "over the limit of 2 for profile 'torch'"),
        ({"gpus": 1}, "gpus", "over the limit of 0"),
        (
            {"profile": "torch", "gpu_ids": [7]},
            "gpu_ids",
            "GPU '7' does not exist on this host (GPUs: 0, 1)",
        ),
        ({"profile": "torch", "gpu_ids": ["GPU-zzzz"]}, "gpu_ids", "does not exist"),
        ({"profile": "torch", "gpu_ids": [0, "GPU-aaaa"]}, "gpu_ids", "listed twice"),
        ({"profile": "torch", "gpu_ids": [0], "gpus": 2}, "gpus", "gpu_ids names 1"),
        ({"profile": "torch", "gpu_ids": {"a": 1}}, "gpu_ids", "must be a list"),
        ({"profile": "torch", "gpu_ids": list(range(100))}, "gpu_ids", "more than 64"),
        ({"profile": "torch", "gpus": "9" * 50}, "gpus", "whole number"),
        ({"profile": "torch", "gpus": -1}, "gpus", "between 0 and 1024"),
        ({"profile": "torch", "gpus": True}, "gpus", "whole number"),
        ({"profile": "torch", "gpus": 1.5}, "gpus", "whole number"),
    ],
)
def test_bad_options_name_the_field(options, field, text):
    with pytest.raises(OptionError) as info:
        check(options)
    assert info.value.field == field
    assert text in str(info.value)


def test_specific_gpus_by_index_or_uuid():
    req = check({"profile": "torch", "gpu_ids": [1]})
    assert req.gpu_ids == ("GPU-bbbb",) and req.gpus == 1
    assert check({"profile": "torch", "gpu_ids": "0,GPU-bbbb"}).gpu_ids == ("GPU-aaaa", "GPU-bbbb")


def test_more_gpus_than_host_has():
    with pytest.raises(OptionError, match="this host has 0 GPU"):
        check({"profile": "torch", "gpus": 1}, inventory=[])
    assert check({"profile": "torch"}, inventory=[]).gpus == 0  # default shrinks to what exists


def test_non_object_body():
    with pytest.raises(OptionError, match="JSON object"):
        check(["profile", "base"])


def test_form_parsing_is_pure_and_keeps_unknown_fields():
    form = {"profile": ["torch"], "gpus": ["2"], "extra": ["x"]}
    before = {k: list(v) for k, v in form.items()}
    assert options_from_form(form) == {"profile": "torch", "gpus": "2", "extra": "x"}
    assert form == before
    with pytest.raises(OptionError, match="extra"):
        check(options_from_form(form))


def test_a_save_starts_with_the_profile_it_came_from():
    from gpulab.core.options import OptionError, validate_options

    profiles = [
        {"name": "base", "image": "i", "gpus": 0, "max_gpus": 1},
        {"name": "big", "image": "j", "gpus": 0, "max_gpus": 2},
    ]
    saves = {"20261126-052400": "big"}
    for named in ({"profile": "big"}, {}):
        r = validate_options(
            {**named, "save": "20261126-052400", "gpus": 2},
            profiles,
            "base",
            inventory=[object()] * 2,
            saves=saves,
        )
        assert r.save == "20261126-052400" and r.profile["name"] == "big" and r.gpus == 2
    # another profile named with it is refused, not silently replaced
    with pytest.raises(OptionError) as e:
        validate_options(
            {"profile": "base", "save": "20261126-052400"}, profiles, "base", saves=saves
        )
    assert e.value.field == "save" and "was saved from profile 'big', not 'base'" in str(e.value)
    for bad, why in (("nope", "not one of your saved environments"), (["x"], "must be the name")):
        with pytest.raises(OptionError) as e:
            validate_options({"save": bad}, profiles, "base", saves=saves)
        assert e.value.field == "save" and why in str(e.value)
    on_swarm = validate_options(
        {"save": "20261126-052400", "node": "w1"},
        profiles,
        "base",
        nodes={"w1"},
        largest=2,
        saves=saves,
    )
    assert (
        on_swarm.save == "20261126-052400"
        and on_swarm.node == "w1"
        and on_swarm.profile["name"] == "big"
    )
    assert validate_options({"save": ""}, profiles, "base").save == ""
