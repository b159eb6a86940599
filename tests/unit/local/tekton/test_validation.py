"""Bad YAML gets a clear error before anything runs; unsupported features are rejected by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelpipe.errors import TektonSpecError, UnsupportedTektonFeatureError

from tests.unit.local.tekton.helpers import Layout, pipeline, ref, run, sh, task

ECHO = task("echo", steps=[sh("say", "echo $(params.msg)")], params=[{"name": "msg"}])


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


def _expect(layout: Layout, error: type[Exception], match: str, *, params=None) -> None:
    with pytest.raises(error, match=match):
        run(layout, params)
    assert not (layout.root / "runs").exists() or not any((layout.root / "runs").rglob("*.log"))


def test_unknown_task_ref_names_the_task_and_known_ones(layout):
    layout.write(pipeline([ref("a", "nope")]), ECHO)
    _expect(layout, TektonSpecError, r"taskRef 'nope' not found .*known: echo")


def test_missing_required_pipeline_param_names_it(layout):
    layout.write(
        pipeline(
            [ref("a", "echo", params=[{"name": "msg", "value": "$(params.m)"}])],
            params=[{"name": "m"}],
        ),
        ECHO,
    )
    _expect(layout, TektonSpecError, "missing required param.* m of Pipeline demo")


def test_missing_required_task_param_names_task_and_param(layout):
    layout.write(pipeline([ref("a", "echo")]), ECHO)
    _expect(layout, TektonSpecError, "task a: missing required param.* msg of Task echo")


def test_undeclared_task_param_is_an_error(layout):
    layout.write(
        pipeline(
            [
                ref(
                    "a",
                    "echo",
                    params=[
                        {"name": "msg", "value": "x"},
                        {"name": "mgs", "value": "y"},
                    ],
                )
            ]
        ),
        ECHO,
    )
    _expect(layout, TektonSpecError, "param.* mgs not declared by Task echo")


def test_wrong_param_type_is_an_error(layout):
    layout.write(pipeline([ref("a", "echo", params=[{"name": "msg", "value": ["x"]}])]), ECHO)
    _expect(layout, TektonSpecError, "param msg .* is string, got array")


def test_enum_violation_is_an_error(layout):
    enum_task = task("e", steps=[sh("s", "true")], params=[{"name": "mode", "enum": ["a", "b"]}])
    layout.write(pipeline([ref("t", "e", params=[{"name": "mode", "value": "c"}])]), enum_task)
    _expect(layout, TektonSpecError, "not in its enum")


def test_unknown_pipeline_variable_is_an_error(layout):
    layout.write(
        pipeline([ref("a", "echo", params=[{"name": "msg", "value": "$(params.missing)"}])]),
        ECHO,
    )
    _expect(layout, TektonSpecError, r"unknown variable \$\(params.missing\)")


def test_reference_to_undeclared_result_is_an_error(layout):
    layout.write(
        pipeline(
            [
                ref("a", "echo", params=[{"name": "msg", "value": "x"}]),
                ref(
                    "b",
                    "echo",
                    params=[{"name": "msg", "value": "$(tasks.a.results.NOPE)"}],
                ),
            ]
        ),
        ECHO,
    )
    _expect(layout, TektonSpecError, "tasks.a.results.NOPE")


def test_unknown_variable_inside_a_task_step_is_an_error(layout):
    bad = task("bad", steps=[sh("s", "echo $(params.undeclared)")])
    layout.write(pipeline([ref("a", "bad")]), bad)
    _expect(layout, TektonSpecError, r"\$\(params.undeclared\)")


def test_unknown_field_is_an_error_like_the_webhook(layout):
    typo = task("t", steps=[{**sh("s", "true"), "scirpt": "x"}])
    layout.write(pipeline([ref("a", "t")]), typo)
    _expect(layout, TektonSpecError, "unknown field.* scirpt")


def test_dependency_cycle_is_an_error(layout):
    layout.write(
        pipeline(
            [
                ref("a", "echo", params=[{"name": "msg", "value": "x"}], runAfter=["b"]),
                ref("b", "echo", params=[{"name": "msg", "value": "x"}], runAfter=["a"]),
            ]
        ),
        ECHO,
    )
    _expect(layout, TektonSpecError, "cycle")


def test_run_after_unknown_task_is_an_error(layout):
    layout.write(
        pipeline(
            [
                ref(
                    "a",
                    "echo",
                    params=[{"name": "msg", "value": "x"}],
                    runAfter=["ghost"],
                )
            ]
        ),
        ECHO,
    )
    _expect(layout, TektonSpecError, "unknown task.* ghost")


def test_unbound_required_task_workspace_is_an_error(layout):
    ws_task = task("w", steps=[sh("s", "true")], workspaces=[{"name": "data"}])
    layout.write(pipeline([ref("a", "w")], workspaces=[{"name": "shared"}]), ws_task)
    _expect(layout, TektonSpecError, "workspace.* data of Task w not bound")


def test_binding_an_unknown_pipeline_workspace_is_an_error(layout):
    ws_task = task("w", steps=[sh("s", "true")], workspaces=[{"name": "data"}])
    layout.write(
        pipeline([ref("a", "w", workspaces=[{"name": "data", "workspace": "nope"}])]),
        ws_task,
    )
    _expect(layout, TektonSpecError, "unknown pipeline workspace 'nope'")


def test_step_without_script_or_command_is_an_error(layout):
    layout.write(pipeline([ref("a", "t")]), task("t", steps=[{"name": "s", "image": "busybox"}]))
    _expect(layout, TektonSpecError, "no script or command")


@pytest.mark.parametrize(
    ("spec_extra", "feature"),
    [
        ({"sidecars": [{"name": "db", "image": "postgres"}]}, "sidecars"),
        ({"volumes": [{"name": "v", "emptyDir": {}}]}, "volumes"),
        (
            {"stepTemplate": {"volumeMounts": [{"name": "v", "mountPath": "/v"}]}},
            "stepTemplate.volumeMounts",
        ),
    ],
)
def test_task_level_features_are_rejected_by_name(layout, spec_extra, feature):
    layout.write(pipeline([ref("a", "t")]), task("t", steps=[sh("s", "true")], **spec_extra))
    _expect(layout, UnsupportedTektonFeatureError, feature)


@pytest.mark.parametrize(
    ("step_extra", "feature"),
    [
        ({"volumeMounts": [{"name": "v", "mountPath": "/v"}]}, "volumeMounts"),
        ({"envFrom": [{"secretRef": {"name": "s"}}]}, "envFrom"),
        ({"stdoutConfig": {"path": "/x"}}, "stdoutConfig"),
        ({"when": [{"input": "a", "operator": "in", "values": ["a"]}]}, "when"),
    ],
)
def test_step_level_features_are_rejected_by_name(layout, step_extra, feature):
    layout.write(pipeline([ref("a", "t")]), task("t", steps=[sh("s", "true", **step_extra)]))
    _expect(layout, UnsupportedTektonFeatureError, f"step s: {feature}")


def test_step_action_ref_is_rejected(layout):
    layout.write(
        pipeline([ref("a", "t")]),
        task("t", steps=[{"name": "s", "ref": {"name": "git-clone"}}]),
    )
    _expect(layout, UnsupportedTektonFeatureError, "step s: ref")


@pytest.mark.parametrize(
    ("task_extra", "feature"),
    [
        ({"matrix": {"params": [{"name": "msg", "value": ["a", "b"]}]}}, "matrix"),
        ({"when": [{"cel": "'a' == 'a'"}]}, "cel"),
    ],
)
def test_pipeline_task_features_are_rejected_by_name(layout, task_extra, feature):
    layout.write(
        pipeline([ref("a", "echo", params=[{"name": "msg", "value": "x"}], **task_extra)]),
        ECHO,
    )
    _expect(layout, UnsupportedTektonFeatureError, feature)


def test_pipelines_in_pipelines_are_rejected(layout):
    layout.write(pipeline([{"name": "child", "pipelineRef": {"name": "other"}}]), ECHO)
    _expect(layout, UnsupportedTektonFeatureError, "pipelineRef")


def test_custom_task_is_rejected(layout):
    custom = {
        "name": "wait",
        "taskRef": {"apiVersion": "wait.testing.tekton.dev/v1beta1", "kind": "Wait"},
    }
    layout.write(pipeline([custom]), ECHO)
    _expect(layout, UnsupportedTektonFeatureError, "custom tasks")


@pytest.mark.parametrize(
    ("resolver", "name", "message"),
    [
        ("hub", "golangci-lint", "'golangci-lint' has no local equivalent"),
        ("my-resolver", "echo", "resolver 'my-resolver'"),
    ],
)
def test_resolver_the_runner_cannot_honour_is_rejected(layout, resolver, name, message):
    remote = {"name": "x", "taskRef": {"resolver": resolver, "params": [{"name": "name", "value": name}]}}
    layout.write(pipeline([remote]), ECHO)
    _expect(layout, UnsupportedTektonFeatureError, message)


def test_guarded_unsupported_task_is_rejected_only_when_it_would_run(layout):
    volumes = task("v", steps=[sh("s", "true")], volumes=[{"name": "x", "emptyDir": {}}])
    guard = [{"input": "$(params.build)", "operator": "in", "values": ["true"]}]
    layout.write(pipeline([ref("build", "v", when=guard)], params=[{"name": "build"}]), volumes)
    skipped = run(layout, {"build": "false"})
    assert skipped.status("build") == "Skipped"
    ran = run(layout, {"build": "true"})
    assert ran.result.status == "Failed"
    with pytest.raises(UnsupportedTektonFeatureError, match="volumes"):
        ran.result.raise_for_status()


def test_invalid_yaml_is_one_line_naming_file_line_and_problem(layout):
    layout.write(pipeline([ref("a", "echo")]), ECHO)
    layout.pipeline_path.write_text("kind: Pipeline\nmetadata: {name: x\nspec: [\n", encoding="utf-8")
    with pytest.raises(TektonSpecError) as caught:
        run(layout, None)
    assert str(caught.value) == (
        f"{layout.pipeline_path}:3:5: invalid YAML: "
        "while parsing a flow mapping, expected ',' or '}', but got ':'"
    )
