"""PipelineRuns rendered from data: params by name, run-script conveniences, errors naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from modelpipe.errors import ConfigError, InvalidSourceError
from modelpipe.pipelineruns import (
    PipelineParam,
    import_params,
    main,
    parse_param_flags,
    render_from_files,
    render_pipelinerun,
)

from tests.support.tools import REPO_ROOT

PARAMS = {
    "source": PipelineParam("source", "string", True),
    "labels": PipelineParam("labels", "array", False),
    "namespace": PipelineParam("namespace", "string", False),
}
EXAMPLE = {
    "apiVersion": "tekton.dev/v1",
    "kind": "PipelineRun",
    "metadata": {"generateName": "x-"},
    "spec": {
        "params": [{"name": "source", "value": "hf://a/b"}, {"name": "keep", "value": "1"}],
        "workspaces": [{"name": "model", "emptyDir": {}}],
    },
}


def test_flags_become_params_and_arrays_split() -> None:
    given = parse_param_flags(["--source", "x", "--labels", "a,b", "--namespace", "ns"], PARAMS, "p")
    assert given == {"source": "x", "labels": ["a", "b"], "namespace": "ns"}
    assert parse_param_flags(["--labels", '["a,b", "c"]'], PARAMS, "p") == {"labels": ["a,b", "c"]}


def test_an_empty_value_means_not_given_and_a_later_flag_wins() -> None:
    assert parse_param_flags(["--source", "", "--labels", ""], PARAMS, "p") == {}
    assert parse_param_flags(["--source", "env", "--source", "cli"], PARAMS, "p") == {"source": "cli"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--sorce", "x"], "unknown argument '--sorce'"), (["source", "x"], "unknown argument 'source'"),
     (["--source"], "--source needs a value")],
)  # fmt: skip
def test_bad_flags_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_param_flags(argv, PARAMS, "p")


def test_render_replaces_adds_and_binds_without_touching_the_example() -> None:
    run = render_pipelinerun(
        EXAMPLE, namespace="ns", params={"source": "s", "new": ["a"]}, secret_workspaces={"auth": "sec"}
    )
    assert run["metadata"]["namespace"] == "ns"
    assert run["spec"]["params"] == [
        {"name": "source", "value": "s"},
        {"name": "keep", "value": "1"},
        {"name": "new", "value": ["a"]},
    ]
    assert run["spec"]["workspaces"][1] == {"name": "auth", "secret": {"secretName": "sec"}}
    assert EXAMPLE["spec"]["params"][0]["value"] == "hf://a/b"


def test_import_names_follow_the_source() -> None:
    assert import_params({"source": "Acme/My_Model.v2"}) == {
        "source": "hf://Acme/My_Model.v2",
        "model-name": "my-model-v2",
        "name": "my-model-v2",
    }
    assert import_params({"source": "hf://org/Repo@v1", "name": "isvc"})["model-name"] == "repo"
    with pytest.raises(InvalidSourceError, match="is not ORG/REPO"):
        import_params({"source": "not/a/model"})
    assert import_params({"model-kind": "text-generation"})["source"] == "hf://Qwen/Qwen2.5-0.5B-Instruct"


def test_rendered_runs_name_their_pipeline_and_keep_the_example_workspaces() -> None:
    run = render_from_files(REPO_ROOT, "model-import", namespace="team", flags=["--source", "o/r"])
    assert run["spec"]["pipelineRef"]["name"] == "model-import"
    assert {w["name"] for w in run["spec"]["workspaces"]} == {"model", "source"}
    with pytest.raises(ConfigError, match="missing required flags: --name"):
        render_from_files(REPO_ROOT, "model-testing", namespace="team", flags=[], require=["name"])
    with pytest.raises(ConfigError, match="--namespace must be a DNS label"):
        render_from_files(REPO_ROOT, "model-import", namespace="Team", flags=[])


def test_main_prints_yaml_or_one_error_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = ["--root", str(REPO_ROOT), "--pipeline", "build-images", "--namespace", "ns", "--prog", "x.sh"]
    assert main([*base, "--secret-workspace", "registry-auth=", "--", "--image", "q/r"]) == 0
    run = yaml.safe_load(capsys.readouterr().out)
    assert {"name": "image", "value": "q/r"} in run["spec"]["params"]
    assert "registry-auth" not in {w["name"] for w in run["spec"]["workspaces"]}
    assert main([*base, "--", "--imag", "q/r"]) == 1
    assert capsys.readouterr().err.startswith("x.sh: error: unknown argument '--imag'")
