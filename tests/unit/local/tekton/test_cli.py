"""`modelpipe local run` end to end in-process: exit codes, one-line errors, results on stdout."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelpipe.cli import main

from tests.unit.local.tekton.helpers import Layout, pipeline, ref, sh, task

GREET = task(
    "greet",
    params=[{"name": "who"}],
    results=[{"name": "LINE"}],
    steps=[
        sh(
            "s",
            'printf "hello %s" "$WHO" > "$(results.LINE.path)"',
            env=[{"name": "WHO", "value": "$(params.who)"}],
        )
    ],
)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path)
    layout.write(
        pipeline(
            [ref("greet", "greet", params=[{"name": "who", "value": "$(params.who)"}])],
            params=[{"name": "who"}],
            results=[{"name": "greeting-line", "value": "$(tasks.greet.results.LINE)"}],
        ),
        GREET,
    )
    return layout


def _local_run(layout: Layout, *flags: str) -> int:
    """`modelpipe local run` on the layout's pipeline with state under the layout."""
    return main(["local", "run", str(layout.pipeline_path), *flags, "--state-dir", str(layout.root / "st")])


def test_run_prints_pipeline_results_and_exits_zero(layout, capsys):
    code = _local_run(layout, "-p", "who=world")
    out = capsys.readouterr()
    assert code == 0
    assert "GREETING_LINE: hello world" in out.out
    assert "status: Succeeded" in out.out
    assert len(list((layout.root / "st" / "runs").iterdir())) == 1


def test_missing_param_is_one_line_error_exit_one(layout, capsys):
    code = _local_run(layout)
    err = capsys.readouterr().err
    assert code == 1
    assert "missing required param(s) who of Pipeline demo (fix: -p who=VALUE)" in err
    assert "Traceback" not in err


def test_undeclared_cli_param_is_rejected(layout, capsys):
    code = _local_run(layout, "-p", "woh=x")
    assert code == 1
    assert "the pipeline declares no such param (known: who)" in capsys.readouterr().err


def test_param_for_a_pipeline_without_params_says_it_has_none(tmp_path, capsys):
    layout = Layout(tmp_path)
    layout.write(pipeline([ref("explode", "bad")]), task("bad", steps=[sh("kaboom", "exit 7")]))
    assert _local_run(layout, "-p", "who=x") == 1
    assert "-p who: the pipeline declares no such param (it declares no params)" in capsys.readouterr().err


def test_failing_step_exits_one_naming_task_step_and_log(tmp_path, capsys):
    layout = Layout(tmp_path)
    layout.write(pipeline([ref("explode", "bad")]), task("bad", steps=[sh("kaboom", "exit 7")]))
    code = main(["local", "run", str(layout.pipeline_path), "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1
    assert (
        f"task explode failed at step kaboom (exit code 7) log: {tmp_path / 'r' / 'explode' / 'kaboom.log'}"
        in err
    )


def test_secrets_file_supplies_key_refs(tmp_path, capsys):
    layout = Layout(tmp_path)
    needs = task(
        "needs",
        results=[{"name": "R"}],
        steps=[
            sh(
                "s",
                'printf "%s" "$REGION" > $(results.R.path)',
                env=[
                    {
                        "name": "REGION",
                        "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "AWS_DEFAULT_REGION"}},
                    }
                ],
            )
        ],
    )
    layout.write(
        pipeline(
            [ref("n", "needs")],
            results=[{"name": "REGION", "value": "$(tasks.n.results.R)"}],
        ),
        needs,
    )
    secrets = tmp_path / "local.env"
    secrets.write_text("# local values\nexport AWS_DEFAULT_REGION='eu-local-1'\n")
    code = main(
        [
            "local",
            "run",
            str(layout.pipeline_path),
            "--secrets-file",
            str(secrets),
            "--run-dir",
            str(tmp_path / "r"),
        ]
    )
    assert code == 0
    assert "REGION: eu-local-1" in capsys.readouterr().out
