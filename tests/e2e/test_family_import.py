"""An fp16-only sd-turbo-like build imported end to end is served and benchmarked at 1 step, guidance 0."""

from __future__ import annotations

from pathlib import Path

import pytest
from model_registry import ModelRegistry
from modelpipe.demo_models import write_family

from tests.support.tools import require_tool

from .test_local_import import ScriptRun, run_local_import

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:User access token is missing"),  # the local registry has no auth
]


@pytest.fixture(scope="module")
def turbo_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ScriptRun]:
    require_tool("weed")
    # A folder named like the Hub repo: only *.fp16.safetensors weights, no default ones.
    model = write_family("tiny-turbo", tmp_path_factory.mktemp("src") / "sd-turbo", variant="fp16")
    state = tmp_path_factory.mktemp("local-state")
    run = run_local_import(state, "--source", model.as_uri(), "--variant", "fp16")
    assert run.code == 0, run.stderr[-4000:]
    return state, run


@pytest.fixture
def version_properties(turbo_import: tuple[Path, ScriptRun], registry_server_factory) -> dict:
    server = registry_server_factory(db=turbo_import[0] / "registry.db")
    registry = ModelRegistry("http://127.0.0.1", server.port, author="e2e", is_secure=False)
    return dict(registry.get_model_version("sd-turbo", "v1").custom_properties or {})


def test_fp16_only_turbo_is_served_at_its_recommended_settings(version_properties: dict) -> None:
    assert version_properties["variant"] == "fp16"
    assert version_properties["serving_defaults"].startswith("64x64, 1 steps, guidance 0 (sd;")


def test_the_benchmark_used_the_served_defaults(version_properties: dict) -> None:
    assert version_properties["benchmark_settings"].startswith("64x64, 1 steps, guidance 0,")


def test_a_folder_the_runtime_cannot_load_fails_at_the_check_step(
    tmp_path_factory: pytest.TempPathFactory, registry_server_factory
) -> None:
    require_tool("weed")
    model = write_family("tiny-sd3", tmp_path_factory.mktemp("src") / "broken-sd3")
    (model / "tokenizer_3" / "tokenizer.json").unlink()  # the T5 vocabulary is gone
    state = tmp_path_factory.mktemp("local-state")
    run = run_local_import(state, "--source", model.as_uri(), "--default-steps", "2")
    assert run.code != 0
    output = run.stdout + run.stderr
    assert "check-model" in output and "component 'tokenizer_3'" in output, output[-4000:]
    server = registry_server_factory(db=state / "registry.db")
    registry = ModelRegistry("http://127.0.0.1", server.port, author="e2e", is_secure=False)
    assert registry.get_registered_model("broken-sd3") is None
