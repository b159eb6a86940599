"""A T5 tokenizer shipped only as ``spiece.model`` (no tokenizer.json), as some Hub repos do, still loads.

Without sentencepiece, transformers fails on such a folder with a misleading tiktoken error; the check step
and the runtime both depend on it now. The vocabulary is a sentencepiece model trained here on a few lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from diffusers_runtime.engine import PipelineOptions, load_pipeline
from modelpipe.demo_models import write_family
from modelpipe.steps.check import check_model

pytestmark = pytest.mark.integration

_TEXT = [
    "a photo of a red cube on a table",
    "a blue sphere next to a green cat",
    "an astronaut riding a horse on the moon",
    "a watercolor painting of a lighthouse at dusk",
] * 8


def _spiece_only_t5(folder: Path, vocab_size: int) -> None:
    """Replace the T5 tokenizer in ``folder`` by a sentencepiece model alone (T5's own layout)."""
    import sentencepiece

    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(_TEXT) + "\n", encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "spiece"),
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    corpus.unlink()
    (folder / "spiece.vocab").unlink()
    for name in ("tokenizer.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 100, "model_max_length": 256}),
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def sd3_with_spiece_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = write_family("tiny-sd3", tmp_path_factory.mktemp("src") / "tiny-sd3")
    _spiece_only_t5(model / "tokenizer_3", vocab_size=60)
    assert sorted(p.name for p in (model / "tokenizer_3").iterdir()) == [
        "spiece.model",
        "tokenizer_config.json",
    ]
    return model


def test_the_check_step_accepts_a_sentencepiece_only_t5_tokenizer(sd3_with_spiece_only: Path) -> None:
    result = check_model(model_dir=sd3_with_spiece_only)
    assert "tokenizer_3: T5Tokenizer" in result.components


def test_the_runtime_loads_it_and_encodes_with_the_sentencepiece_vocabulary(
    sd3_with_spiece_only: Path,
) -> None:
    import sentencepiece

    loaded = load_pipeline(sd3_with_spiece_only, PipelineOptions(device="cpu", dtype="float32"))
    tokenizer = loaded.pipeline.tokenizer_3
    processor = sentencepiece.SentencePieceProcessor(
        model_file=str(sd3_with_spiece_only / "tokenizer_3" / "spiece.model")
    )
    prompt = "a red cube next to a green cat"
    assert tokenizer(prompt).input_ids == [*processor.encode(prompt), processor.eos_id()]
    assert len(tokenizer) == processor.get_piece_size() + 100  # T5's sentinels after the pieces
