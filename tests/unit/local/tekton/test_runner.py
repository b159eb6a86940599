"""Running synthetic pipelines on the host: params, results, workspaces, when, retries, timeouts, finally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelpipe.errors import LocalRunError, PipelineTaskFailedError

from tests.unit.local.tekton.helpers import Layout, pipeline, ref, run, sh, task

WRITE = task(
    "write",
    params=[{"name": "value"}],
    results=[{"name": "OUT"}],
    steps=[
        sh(
            "w",
            'printf "%s" "$V" > "$(results.OUT.path)"',
            env=[{"name": "V", "value": "$(params.value)"}],
        )
    ],
)
READ = task(
    "read",
    params=[{"name": "value"}],
    results=[{"name": "OUT"}],
    steps=[
        sh(
            "r",
            'printf "got-%s" "$V" > $(results.OUT.path)',
            env=[{"name": "V", "value": "$(params.value)"}],
        )
    ],
)
FAIL = task("fail", steps=[sh("boom", "echo about to fail; exit 3")])
NOOP = task("noop", steps=[sh("n", "echo noop")])


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path)


def test_results_flow_to_downstream_params_and_pipeline_results(layout):
    layout.write(
        pipeline(
            [
                ref(
                    "a",
                    "write",
                    params=[{"name": "value", "value": "$(params.greeting)"}],
                ),
                ref(
                    "b",
                    "read",
                    params=[{"name": "value", "value": "$(tasks.a.results.OUT)"}],
                ),
            ],
            params=[{"name": "greeting", "default": "hi"}],
            results=[{"name": "FINAL", "value": "$(tasks.b.results.OUT)"}],
        ),
        WRITE,
        READ,
    )
    done = run(layout)
    assert done.result.status == "Succeeded"
    assert done.results("b") == {"OUT": "got-hi"}
    assert done.result.results == {"FINAL": "got-hi"}


def test_array_and_object_params_reach_command_args(layout):
    show = task(
        "show",
        params=[
            {"name": "flags", "type": "array"},
            {
                "name": "conn",
                "type": "object",
                "properties": {"bucket": {}, "region": {}},
                "default": {"region": "eu"},
            },
        ],
        results=[{"name": "ARGS"}],
        steps=[
            {
                "name": "s",
                "image": "x",
                "command": ["sh", "-c", 'echo "$*" > "$0"', "$(results.ARGS.path)"],
                "args": ["$(params.flags[*])", "$(params.conn.bucket)", "$(params.conn.region)"],
            }
        ],
    )
    layout.write(
        pipeline(
            [
                ref(
                    "s",
                    "show",
                    params=[
                        {"name": "flags", "value": "$(params.f[*])"},
                        {"name": "conn", "value": {"bucket": "models"}},
                    ],
                )
            ],
            params=[{"name": "f", "type": "array", "default": ["--x", "two words"]}],
        ),
        show,
    )
    assert run(layout).results("s") == {"ARGS": "--x two words models eu\n"}


def test_context_variables_name_the_run_and_task_run(layout):
    ctx = task(
        "ctx",
        params=[{"name": "run"}],
        results=[{"name": "NAMES"}],
        steps=[
            sh(
                "s",
                'printf "%s|%s|%s" "$(params.run)" "$(context.taskRun.name)" "$(context.task.name)"'
                ' > "$(results.NAMES.path)"',
            )
        ],
    )
    layout.write(
        pipeline(
            [
                ref(
                    "t",
                    "ctx",
                    params=[{"name": "run", "value": "$(context.pipelineRun.name)"}],
                )
            ]
        ),
        ctx,
    )
    assert run(layout).results("t") == {"NAMES": "demo-run-1|demo-run-1-t|ctx"}


def test_workspace_path_subpath_and_bound(layout, tmp_path):
    ws = task(
        "ws",
        workspaces=[{"name": "data"}, {"name": "extra", "optional": True}],
        results=[{"name": "BOUND"}],
        steps=[
            sh(
                "s",
                'echo hello > "$(workspaces.data.path)/f.txt"\n'
                'printf "%s" "$(workspaces.extra.bound)" > "$(results.BOUND.path)"',
            )
        ],
    )
    layout.write(
        pipeline(
            [ref("t", "ws", workspaces=[{"name": "data", "workspace": "shared", "subPath": "sub"}])],
            workspaces=[{"name": "shared"}],
        ),
        ws,
    )
    shared = tmp_path / "shared-dir"
    done = run(layout, workspaces={"shared": shared})
    assert (shared / "sub" / "f.txt").read_text() == "hello\n"
    assert done.results("t") == {"BOUND": "false"}


def test_literal_tekton_results_folder_maps_to_the_task_results(layout):
    literal = task(
        "lit",
        results=[{"name": "X"}],
        steps=[sh("s", 'printf 42 > "$D/X"', env=[{"name": "D", "value": "/tekton/results"}])],
    )
    layout.write(pipeline([ref("t", "lit")]), literal)
    assert run(layout).results("t") == {"X": "42"}


def test_array_result_is_parsed_as_json(layout):
    arr = task(
        "arr",
        results=[{"name": "L", "type": "array"}],
        steps=[sh("s", 'echo \'["a", "b"]\' > $(results.L.path)')],
    )
    layout.write(
        pipeline(
            [ref("t", "arr")],
            results=[{"name": "ALL", "type": "array", "value": "$(tasks.t.results.L[*])"}],
        ),
        arr,
    )
    done = run(layout)
    assert done.results("t") == {"L": ["a", "b"]}
    assert json.loads(done.result.result_strings()["ALL"]) == ["a", "b"]


def test_results_over_the_termination_message_budget_fail_the_task(layout):
    big = task(
        "big",
        results=[{"name": "B"}],
        steps=[sh("s", "head -c 5000 /dev/zero | tr '\\0' x > $(results.B.path)")],
    )
    layout.write(pipeline([ref("t", "big")]), big)
    done = run(layout)
    assert done.status("t") == "Failed"
    assert "4096-byte" in done.result.tasks["t"].reason


def test_run_after_orders_tasks(layout):
    order = task(
        "order",
        params=[{"name": "n"}],
        workspaces=[{"name": "w"}],
        steps=[sh("s", 'sleep 0.$(params.n); echo $(params.n) >> "$(workspaces.w.path)/order"')],
    )
    bind = [{"name": "w", "workspace": "w"}]
    layout.write(
        pipeline(
            [
                ref("slow", "order", params=[{"name": "n", "value": "5"}], workspaces=bind),
                ref(
                    "after", "order", params=[{"name": "n", "value": "1"}], workspaces=bind, runAfter=["slow"]
                ),
            ],
            workspaces=[{"name": "w"}],
        ),
        order,
    )
    w = layout.root / "w"
    run(layout, workspaces={"w": w})
    assert (w / "order").read_text().split() == ["5", "1"]


def test_independent_tasks_run_in_parallel(layout):
    # Each waits for the other's marker: only concurrent execution lets both finish.
    meet = task(
        "meet",
        params=[{"name": "me"}, {"name": "other"}],
        workspaces=[{"name": "w"}],
        steps=[
            sh(
                "s",
                'd="$(workspaces.w.path)"; touch "$d/$(params.me)"\n'
                'for i in $(seq 100); do [ -e "$d/$(params.other)" ] && exit 0; sleep 0.05; done\n'
                "exit 1",
            )
        ],
    )
    bind = [{"name": "w", "workspace": "w"}]
    layout.write(
        pipeline(
            [
                ref(
                    "left",
                    "meet",
                    params=[{"name": "me", "value": "l"}, {"name": "other", "value": "r"}],
                    workspaces=bind,
                ),
                ref(
                    "right",
                    "meet",
                    params=[{"name": "me", "value": "r"}, {"name": "other", "value": "l"}],
                    workspaces=bind,
                ),
            ],
            workspaces=[{"name": "w"}],
        ),
        meet,
    )
    assert run(layout).result.status == "Succeeded"


def test_when_false_skips_only_that_task_and_result_consumers(layout):
    guard = [{"input": "$(params.build)", "operator": "notin", "values": ["false"]}]
    layout.write(
        pipeline(
            [
                ref(
                    "build",
                    "write",
                    params=[{"name": "value", "value": "img"}],
                    when=guard,
                ),
                ref("after", "noop", runAfter=["build"]),
                ref(
                    "consumer",
                    "read",
                    params=[{"name": "value", "value": "$(tasks.build.results.OUT)"}],
                ),
            ],
            params=[{"name": "build"}],
        ),
        WRITE,
        NOOP,
        READ,
    )
    done = run(layout, {"build": "false"})
    assert done.status("build") == "Skipped"
    assert "WhenExpressionsEvaluatedToFalse" in done.result.tasks["build"].reason
    assert done.status("after") == "Succeeded"
    assert done.status("consumer") == "Skipped"
    assert done.result.status == "Completed"


def test_when_in_with_array_values(layout):
    guard = [{"input": "local", "operator": "in", "values": "$(params.targets[*])"}]
    layout.write(
        pipeline(
            [ref("t", "noop", when=guard)],
            params=[{"name": "targets", "type": "array"}],
        ),
        NOOP,
    )
    assert run(layout, {"targets": ["kserve", "local"]}).status("t") == "Succeeded"
    assert run(layout, {"targets": ["kserve"]}).status("t") == "Skipped"


def test_failure_stops_dependents_names_task_step_code_and_log_and_runs_finally(layout):
    report = task(
        "report",
        params=[{"name": "all"}, {"name": "one"}],
        results=[{"name": "SEEN"}],
        steps=[sh("s", 'printf "%s/%s" "$(params.all)" "$(params.one)" > $(results.SEEN.path)')],
    )
    layout.write(
        pipeline(
            [ref("bad", "fail"), ref("later", "noop", runAfter=["bad"])],
            **{
                "finally": [
                    ref(
                        "report",
                        "report",
                        params=[
                            {"name": "all", "value": "$(tasks.status)"},
                            {"name": "one", "value": "$(tasks.later.status)"},
                        ],
                    )
                ]
            },
        ),
        FAIL,
        NOOP,
        report,
    )
    done = run(layout)
    assert done.result.status == "Failed"
    assert done.status("later") == "Skipped"
    assert done.results("report") == {"SEEN": "Failed/None"}
    message = done.result.failure_message()
    log_path = layout.root / "runs" / "run-0" / "bad" / "boom.log"
    assert "task bad failed at step boom (exit code 3)" in message
    assert str(log_path) in message
    assert log_path.read_text() == "about to fail\n"
    assert "[bad/boom] about to fail" in done.output
    with pytest.raises(PipelineTaskFailedError, match="task bad"):
        done.result.raise_for_status()


def test_default_shell_script_stops_at_the_first_failing_command(layout):
    seq = task("seq", steps=[sh("s", "echo one\nfalse\necho never")])
    layout.write(pipeline([ref("t", "seq")]), seq)
    done = run(layout)
    assert done.status("t") == "Failed"
    assert "never" not in done.output


def test_shebang_script_runs_with_its_interpreter(layout):
    py = task(
        "py",
        results=[{"name": "R"}],
        steps=[
            sh(
                "s",
                "#!/usr/bin/env python3\nimport sys\nopen('$(results.R.path)', 'w').write(sys.version[:1])",
            )
        ],
    )
    layout.write(pipeline([ref("t", "py")]), py)
    assert run(layout).results("t") == {"R": "3"}


def test_retries_rerun_a_failing_task_with_retry_count(layout):
    flaky = task(
        "flaky",
        workspaces=[{"name": "w"}],
        results=[{"name": "TRY"}],
        steps=[
            sh(
                "s",
                'f="$(workspaces.w.path)/tries"; echo x >> "$f"\n'
                'printf "%s" "$(context.task.retry-count)" > $(results.TRY.path)\n'
                '[ "$(wc -l < "$f")" -ge 2 ]',
            )
        ],
    )
    layout.write(
        pipeline(
            [ref("t", "flaky", retries=2, workspaces=[{"name": "w", "workspace": "w"}])],
            workspaces=[{"name": "w"}],
        ),
        flaky,
    )
    done = run(layout)
    assert done.status("t") == "Succeeded"
    assert done.results("t") == {"TRY": "1"}
    assert (layout.root / "runs" / "run-0" / "t" / "s.log").exists()
    assert (layout.root / "runs" / "run-0" / "t" / "s.retry-1.log").exists()


def test_task_timeout_kills_the_step(layout):
    slow = task("slow", steps=[sh("s", "sleep 30")])
    layout.write(pipeline([ref("t", "slow", timeout="1s")]), slow)
    done = run(layout)
    assert done.status("t") == "Failed"
    assert "timed out after 1s" in done.result.tasks["t"].reason


def test_step_on_error_continue_lets_the_task_succeed(layout):
    cont = task(
        "cont",
        results=[{"name": "R"}],
        steps=[sh("a", "exit 4", onError="continue"), sh("b", "printf ok > $(results.R.path)")],
    )
    layout.write(pipeline([ref("t", "cont")]), cont)
    done = run(layout)
    assert done.results("t") == {"R": "ok"}
    assert "exited 4; onError: continue" in done.output


def test_pipeline_task_on_error_continue_keeps_the_pipeline_going(layout):
    layout.write(
        pipeline(
            [
                ref("bad", "fail", onError="continue"),
                ref("next", "noop", runAfter=["bad"]),
            ]
        ),
        FAIL,
        NOOP,
    )
    done = run(layout)
    assert done.status("bad") == "Failed"
    assert done.status("next") == "Succeeded"


def test_step_env_maps_secret_keys_to_local_values_and_redacts_them(layout):
    sec = task(
        "sec",
        steps=[
            sh(
                "s",
                'echo "key=$AWS_SECRET_ACCESS_KEY opt=${OPT-unset}"',
                env=[
                    {
                        "name": "AWS_SECRET_ACCESS_KEY",
                        "valueFrom": {
                            "secretKeyRef": {"name": "aws-connection-x", "key": "AWS_SECRET_ACCESS_KEY"}
                        },
                    },
                    {
                        "name": "OPT",
                        "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "NOT_SET", "optional": True}},
                    },
                ],
            )
        ],
    )
    layout.write(pipeline([ref("t", "sec")]), sec)
    done = run(layout, values={"AWS_SECRET_ACCESS_KEY": "local-secret-value-123"})
    assert "[t/s] key=*** opt=unset" in done.output
    assert "local-secret-value-123" not in (layout.root / "runs" / "run-0" / "t" / "s.log").read_text()


def test_missing_required_secret_key_fails_the_task_naming_the_key(layout):
    sec = task(
        "sec",
        steps=[
            sh(
                "s",
                "true",
                env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "MY_TOKEN"}}}],
            )
        ],
    )
    layout.write(pipeline([ref("t", "sec")]), sec)
    done = run(layout)
    assert done.status("t") == "Failed"
    with pytest.raises(LocalRunError, match="key MY_TOKEN has no local value"):
        done.result.raise_for_status()


def test_step_working_dir_is_created_and_used(layout):
    wd = task(
        "wd",
        workspaces=[{"name": "w"}],
        steps=[sh("s", "pwd > here", workingDir="$(workspaces.w.path)/deep/dir")],
    )
    layout.write(
        pipeline(
            [ref("t", "wd", workspaces=[{"name": "w", "workspace": "w"}])],
            workspaces=[{"name": "w"}],
        ),
        wd,
    )
    w = layout.root / "w"
    run(layout, workspaces={"w": w})
    assert (w / "deep" / "dir" / "here").read_text().strip() == str((w / "deep" / "dir").resolve())


def test_venv_bin_comes_first_on_path(layout):
    which = task(
        "which",
        results=[{"name": "P"}],
        steps=[sh("s", 'command -v python > "$(results.P.path)"')],
    )
    layout.write(pipeline([ref("t", "which")]), which)
    import sys

    assert run(layout).results("t")["P"].strip() == str(Path(sys.executable).parent / "python")


def test_inline_task_spec_runs(layout):
    inline = {
        "name": "inline",
        "params": [{"name": "m", "value": "x"}],
        "taskSpec": {"params": [{"name": "m"}], "steps": [sh("s", "echo inline-$(params.m)")]},
    }
    layout.write(pipeline([inline]))
    assert "[inline/s] inline-x" in run(layout).output


def test_succeeded_task_missing_a_consumed_result_fails_the_run(layout):
    silent = task("silent", results=[{"name": "OUT"}], steps=[sh("s", "true")])
    layout.write(
        pipeline(
            [
                ref("a", "silent"),
                ref(
                    "b",
                    "read",
                    params=[{"name": "value", "value": "$(tasks.a.results.OUT)"}],
                ),
            ]
        ),
        silent,
        READ,
    )
    done = run(layout)
    assert done.status("b") == "Failed"
    assert "did not write result OUT" in done.result.failure_message()


def test_plain_settings_in_a_secret_are_not_masked(layout):
    conn = task(
        "conn",
        steps=[
            sh(
                "s",
                'echo "bucket=$AWS_S3_BUCKET"',
                env=[
                    {
                        "name": "AWS_S3_BUCKET",
                        "valueFrom": {"secretKeyRef": {"name": "aws-connection-x", "key": "AWS_S3_BUCKET"}},
                    }
                ],
            )
        ],
    )
    layout.write(pipeline([ref("t", "conn")]), conn)
    assert (
        "[t/s] bucket=plain-bucket-name" in run(layout, values={"AWS_S3_BUCKET": "plain-bucket-name"}).output
    )


def test_interrupt_kills_running_steps_and_starts_no_retry(layout):
    import threading
    import time

    from modelpipe.local.tekton.host import ProcessTable

    layout.write(
        pipeline([ref("t", "slow", retries=3)]),
        task("slow", steps=[sh("s", "sleep 30")]),
    )
    processes = ProcessTable()
    threading.Timer(1.0, processes.kill_all).start()
    started = time.monotonic()
    done = run(layout, processes=processes)
    assert time.monotonic() - started < 15
    assert done.status("t") == "Failed"
    assert not list((layout.root / "runs" / "run-0" / "t").glob("s.retry-*.log"))
