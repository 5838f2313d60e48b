import pytest

from spawner.options import OptionError, options_from_form, validate_options
from spawner.siteconfig import validate_site

PROFILES = validate_site({
    "auth": {"admin_users": ["a"]},
    "profiles": [
        {"name": "base", "image": "gpulab/base:latest"},
        {"name": "torch", "image": "gpulab/pytorch:latest", "gpus": 1, "max_gpus": 2},
    ],
})["profiles"]


def check(options):
    return validate_options(options, PROFILES, "base")


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
        ({"profile": "torch", "gpus": 3}, "gpus", "between 0 and 2"),
        ({"gpus": 1}, "gpus", "between 0 and 0"),
        ({"profile": "torch", "gpus": "9" * 50}, "gpus", "whole number"),
        ({"profile": "torch", "gpus": -1}, "gpus", "between 0 and 2"),
        ({"profile": "torch", "gpus": True}, "gpus", "whole number"),
        ({"profile": "torch", "gpus": 1.5}, "gpus", "whole number"),
    ],
)
def test_bad_options_name_the_field(options, field, text):
    with pytest.raises(OptionError) as info:
        check(options)
    assert info.value.field == field
    assert text in str(info.value)


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
