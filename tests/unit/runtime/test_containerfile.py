"""Static rules for runtime/Containerfile: pinned base, non-root, same pins as the tools image, no weights."""

from __future__ import annotations

import re

from tests.support.tools import REPO_ROOT

RUNTIME = REPO_ROOT / "runtime"
CONTAINERFILE = (RUNTIME / "Containerfile").read_text(encoding="utf-8")


def test_constraints_copy_matches_tools_constraints() -> None:
    tools = (REPO_ROOT / "tools" / "constraints.txt").read_text(encoding="utf-8")
    assert (RUNTIME / "constraints.txt").read_text(encoding="utf-8") == tools, (
        "runtime/constraints.txt drifted: cp tools/constraints.txt runtime/constraints.txt"
    )


def test_base_image_is_a_pinned_build_arg() -> None:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", CONTAINERFILE, re.MULTILINE)
    assert match, "BASE_IMAGE build arg missing"
    image = match.group(1)
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", CONTAINERFILE, re.MULTILINE)


def test_runs_as_numeric_non_root_user_with_group_writable_home() -> None:
    users = re.findall(r"^USER (\S+)$", CONTAINERFILE, re.MULTILINE)
    assert users and users[-1].isdigit() and users[-1] != "0"
    assert "chgrp -R 0" in CONTAINERFILE and "chmod -R g=u" in CONTAINERFILE


def test_installs_with_constraints_and_bakes_in_no_weights() -> None:
    assert "-c constraints.txt" in CONTAINERFILE
    copies = re.findall(r"^COPY (.+)$", CONTAINERFILE, re.MULTILINE)
    assert copies == [
        "constraints.txt pyproject.toml ./",
        "diffusers_runtime ./diffusers_runtime",
    ]
    assert not re.search(r"safetensors|\.bin\b|from_pretrained", CONTAINERFILE)
