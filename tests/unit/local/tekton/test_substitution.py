"""Variable substitution: Tekton's namespaces only, arrays expand as whole items, unknown names fail."""

from __future__ import annotations

import pytest
from modelpipe.errors import TektonSpecError, UnsupportedTektonFeatureError
from modelpipe.local.tekton.substitution import (
    Scope,
    UnavailableResultError,
    result_references,
    substitute_list,
    substitute_string,
    substitute_value,
    task_references,
)

SCOPE = Scope(
    values={
        "params.name": "tiny",
        "params.dotted.name": "d",
        "params.flags": ["--a", "--b"],
        "params.conn": {"bucket": "models", "region": "eu"},
        "context.pipelineRun.name": "run-1",
        "tasks.up.results.MODEL_URI": "s3://m/x",
    },
    unavailable=frozenset({"tasks.build.results"}),
    where="test",
)


def test_string_params_context_and_results_are_replaced():
    text = "$(params.name) $(context.pipelineRun.name) $(tasks.up.results.MODEL_URI)"
    assert substitute_string(text, SCOPE) == "tiny run-1 s3://m/x"


def test_bracket_param_syntax_reaches_dotted_names():
    assert substitute_string("$(params['dotted.name'])-$(params[\"name\"])", SCOPE) == "d-tiny"


def test_shell_command_substitution_is_left_alone():
    script = 'echo "$(date +%s)" $(dirname "$X") $(params.name)'
    assert substitute_string(script, SCOPE) == 'echo "$(date +%s)" $(dirname "$X") tiny'


def test_array_reference_expands_as_whole_items_in_lists():
    assert substitute_list(["run", "$(params.flags[*])", "$(params.name)"], SCOPE) == [
        "run",
        "--a",
        "--b",
        "tiny",
    ]


def test_array_index_and_object_key():
    assert substitute_string("$(params.flags[1]) $(params.conn.bucket)", SCOPE) == "--b models"


def test_array_inside_a_longer_string_is_an_error():
    with pytest.raises(TektonSpecError, match="can only stand alone"):
        substitute_string("x $(params.flags[*])", SCOPE)


def test_whole_object_passes_through_as_a_param_value():
    assert substitute_value("$(params.conn[*])", SCOPE) == {
        "bucket": "models",
        "region": "eu",
    }


def test_unknown_variable_in_a_tekton_namespace_fails_naming_it():
    with pytest.raises(TektonSpecError, match=r"unknown variable \$\(params.nope\)"):
        substitute_string("$(params.nope)", SCOPE)


def test_unknown_object_key_fails():
    with pytest.raises(TektonSpecError, match="no key 'zone'"):
        substitute_string("$(params.conn.zone)", SCOPE)


def test_index_out_of_range_fails():
    with pytest.raises(TektonSpecError, match="out of range"):
        substitute_string("$(params.flags[5])", SCOPE)


def test_step_namespace_is_rejected_as_unsupported():
    with pytest.raises(UnsupportedTektonFeatureError, match="steps"):
        substitute_string("$(steps.step-a.exitCode.path)", SCOPE)


def test_result_of_a_skipped_task_is_unavailable():
    with pytest.raises(UnavailableResultError):
        substitute_string("$(tasks.build.results.IMAGE_DIGEST)", SCOPE)


def test_task_and_result_references_are_found_for_dependencies():
    values = [
        "$(tasks.a.results.X)",
        {"k": "$(tasks.b.status)"},
        ["$(params.p)", "$(tasks.c.results.Y[*])"],
    ]
    assert task_references(values) == {"a", "b", "c"}
    assert result_references(values) == {("a", "X"), ("c", "Y")}
