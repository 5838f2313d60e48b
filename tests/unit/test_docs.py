"""The docs keep up with the code: every site-file key is in the admin guide and in the example."""

import os
import re

import yaml

from gpulab.core.site import model as siteconfig
from gpulab.core.site.schema import key_paths

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def all_keys():
    paths = key_paths(siteconfig.SCHEMA) + key_paths(siteconfig._gpus, "gpus")
    # gpus.devices is "auto" or a list of GPUs: its item keys are checked by its own function
    return paths + [f"gpus.devices[].{k}" for k in siteconfig._gpu_device.fields]


def read(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return f.read()


def test_every_site_file_key_is_in_the_admin_guide():
    guide = read("docs", "admin.md")
    missing = [p for p in all_keys() if f"`{p}`" not in guide]
    assert not missing, f"docs/admin.md does not document: {', '.join(missing)}"


def test_every_site_file_key_is_in_the_example():
    text = read("gpulab.example.yaml")
    siteconfig.validate_site(yaml.safe_load(text))  # the example itself is valid
    # a key counts when its name appears as a YAML key (set, or commented out) in its section
    sections = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+):", line)
        if m:
            current = m.group(1)
        elif current:
            sections.setdefault(current, []).append(line)
    missing = []
    for path in all_keys():
        parts = [p for p in re.split(r"\.|\[\]\.?", path) if p]
        top, leaf = parts[0], parts[-1]
        body = "\n".join(sections.get(top, [])) if len(parts) > 1 else text
        if not re.search(rf"(^|[\s{{,#-]){re.escape(leaf)}:", body, re.M):
            missing.append(path)
    assert not missing, f"gpulab.example.yaml does not show: {', '.join(missing)}"
