"""The tiny LLM demo model: byte-identical on rewrite, a Llama with a byte-level BPE and a chat template."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from modelpipe.demo_models.llm import CONTEXT_LENGTH, IM_END

from tests.support.tools import REPO_ROOT

pytestmark = pytest.mark.integration

# What `modelpipe download --model-kind text-generation` keeps and vLLM reads; nothing else is written.
EXPECTED_FILES = {
    "chat_template.jinja",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
}


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_tiny_llm_command_writes_byte_identical_files(tmp_path: Path) -> None:
    for out in ("first", "second"):
        result = subprocess.run(
            [sys.executable, "-m", "modelpipe", "demo-model", "tiny-llm", str(tmp_path / out)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
    first, second = _digests(tmp_path / "first"), _digests(tmp_path / "second")
    assert set(first) == EXPECTED_FILES
    assert first == second


def test_tiny_llm_is_a_llama_with_heads_vllm_cpu_supports(tiny_llm_dir: Path) -> None:
    config = json.loads((tiny_llm_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["hidden_size"] == 128 and config["num_hidden_layers"] == 2
    assert config["head_dim"] >= 64
    assert config["max_position_embeddings"] == CONTEXT_LENGTH


def test_tiny_llm_tokenizer_round_trips_any_text_and_adds_bos(tiny_llm_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir, local_files_only=True)
    text = "The capital of France? Ünïcødé ✓ 🚀 tabs\tand\nnewlines"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len(ids) < len(text.encode()), "BPE merges should make text shorter than its bytes"


def test_tiny_llm_chat_template_renders_chatml_and_stops_at_im_end(tiny_llm_dir: Path) -> None:
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir, local_files_only=True)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    generation = GenerationConfig.from_pretrained(tiny_llm_dir)
    assert tokenizer.convert_tokens_to_ids(IM_END) in generation.eos_token_id


def test_tiny_llm_generates_varied_tokens(tiny_llm_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir, local_files_only=True).eval()
    inputs = tokenizer("The quick brown fox", return_tensors="pt")
    with torch.no_grad():
        logprobs = torch.log_softmax(model(**inputs).logits[0, -1], dim=-1)
    # Random but peaked: a uniform distribution would make logprob comparisons meaningless.
    assert float(logprobs.max() - logprobs.min()) > 2.0
