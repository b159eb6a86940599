"""Counting a prompt's tokens during validation never touches the tokenizer the engine encodes with."""

from __future__ import annotations

from pathlib import Path

from diffusers_runtime.families import _counter
from transformers import AutoTokenizer


def test_counting_tokens_leaves_the_pipeline_tokenizer_settings_alone(tiny_sd_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_sd_dir / "tokenizer")
    # What the pipeline does on the engine thread; a fast tokenizer keeps these settings between calls.
    tokenizer(["a fox"], padding="max_length", max_length=77, truncation=True)
    backend = getattr(tokenizer, "_tokenizer", None)
    before = (backend.truncation, backend.padding) if backend is not None else None
    count = _counter(tokenizer, special=True)
    assert count("a red fox in the snow") > 2
    after = (backend.truncation, backend.padding) if backend is not None else None
    assert after == before
