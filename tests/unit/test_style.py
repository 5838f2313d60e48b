"""House style: the formatter and the linter configured in pyproject.toml agree with the tree."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUFF = os.path.join(os.path.dirname(sys.executable), "ruff")


def test_ruff_lint_is_clean():
    proc = subprocess.run(
        [RUFF, "check", "--output-format", "concise", "."], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_applied():
    proc = subprocess.run(
        [RUFF, "format", "--check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, "run `make lint` (ruff format):\n" + proc.stdout
