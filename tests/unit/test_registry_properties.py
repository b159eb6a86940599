"""The one merge rule for customProperties updates (an update replaces the whole map)."""

from __future__ import annotations

from modelpipe.registry_client import merged_properties


def test_what_others_wrote_stays_removed_keys_go_and_new_values_win() -> None:
    current = {"clip_score": 31.5, "team": "", "validated": "", "runtime_image": "old"}
    merged = merged_properties(
        current, {"runtime_image": "new", "benchmarked": ""}, remove=["validated", "runtime_image"]
    )
    assert merged == {"clip_score": 31.5, "team": "", "runtime_image": "new", "benchmarked": ""}
    assert current["validated"] == "" and current["runtime_image"] == "old"  # the input is not changed


def test_a_version_without_properties_gets_just_the_new_ones() -> None:
    assert merged_properties(None, {"source": "hf://org/repo"}) == {"source": "hf://org/repo"}
