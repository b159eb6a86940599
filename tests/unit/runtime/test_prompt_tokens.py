"""Counting a prompt's tokens during validation never touches the tokenizer the engine encodes with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from diffusers_runtime.families import _counter
from modelpipe.demo_models.tokenizers import clip_tokenizer, gemma_tokenizer, t5_tokenizer
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


TEXTS = [
    "a cat",
    "",
    "A  Photo of an ASTRONAUT, 4k!!",
    "日本語 😀 café",
    "<|endoftext|> </s> <pad>",
    "word " * 120,
]


@pytest.mark.parametrize("make", [clip_tokenizer, t5_tokenizer, gemma_tokenizer])
def test_counted_tokens_match_the_tokenizers_own_count(make: Callable[[], Any]) -> None:
    tokenizer = make()
    count = _counter(tokenizer, special=True)
    for text in TEXTS:
        assert count(text) == len(tokenizer(text, truncation=False)["input_ids"]), text


def test_counting_ignores_truncation_the_pipeline_left_on_its_tokenizer() -> None:
    tokenizer = clip_tokenizer()
    tokenizer(["a fox"], padding="max_length", max_length=8, truncation=True)
    count = _counter(tokenizer, special=True)
    full = len(clip_tokenizer()("word " * 100, truncation=False)["input_ids"])
    assert full > 8
    assert count("word " * 100) == full
