"""A tiny random-weight causal language model (Llama) with a tokenizer trained in code, for the LLM path.

vLLM's CPU attention needs head_dim >= 64, so the model has 2 heads of 64 over a hidden size of 128. The
byte-level BPE tokenizer is trained here on a fixed text with ``tokenizers``, so nothing comes from the Hub
and the same call writes byte-identical files.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SEED = 0
CONTEXT_LENGTH = 512
VOCAB_SIZE = 512
BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|end_of_text|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (BOS_TOKEN, EOS_TOKEN, IM_START, IM_END)
# ChatML: the format many instruction-tuned models use; generation stops at <|im_end|>.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Larger than transformers' 0.02 so the random model's next-token distributions are peaked rather than
# uniform: a logprob comparison against it can then tell a right position or token from a wrong one.
_INITIALIZER_RANGE = 0.2
_CORPUS = """\
The quick brown fox jumps over the lazy dog. A model is trained on text and predicts the next token.
Question: What is the capital of France? Answer: Paris is the capital of France.
Question: Which planet is known as the red planet? Answer: Mars is called the red planet.
Question: What do plants need to grow? Answer: Plants need water, light and air to grow.
The user asks a question and the assistant gives a short, helpful answer.
Language models are served with an OpenAI compatible API and evaluated on benchmark tasks.
Water boils at one hundred degrees at sea level. Ice melts when it is warm.
The sun rises in the east and sets in the west. The moon moves around the earth.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 20 50 100 1000. Two plus two is four.
Cats and dogs are animals. Birds can fly and fish can swim in the sea.
A pipeline downloads a model, uploads it, registers it, deploys it and tests the endpoint.
"""


def _train_tokenizer() -> Any:  # -> tokenizers.Tokenizer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS.splitlines(), trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    # Like Llama 3: every encoded sequence starts with the BOS token.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    return tokenizer


def tiny_llm_tokenizer() -> Any:  # -> transformers.PreTrainedTokenizerFast
    """The tiny LLM's tokenizer: byte-level BPE (every byte encodable), BOS added, ChatML template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(),
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        model_max_length=CONTEXT_LENGTH,
        chat_template=CHAT_TEMPLATE,
    )


def write_tiny_llm(out: Path) -> Path:
    """Write a tiny Llama causal LM (random weights, float32) with tokenizer and generation config.

    Args:
        out: A new or empty folder; filled atomically (a crash leaves no half-written model).

    Returns:
        ``out``, loadable with ``AutoModelForCausalLM.from_pretrained(out)`` and by vLLM.

    Raises:
        FileExistsError: ``out`` exists and is not an empty folder.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from modelpipe.demo_models import _finish, _prepare_out

    tmp = _prepare_out(out)
    try:
        tokenizer = tiny_llm_tokenizer()
        ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=64,
            max_position_embeddings=CONTEXT_LENGTH,
            rms_norm_eps=1e-5,
            initializer_range=_INITIALIZER_RANGE,
            tie_word_embeddings=False,
            bos_token_id=ids[BOS_TOKEN],
            eos_token_id=ids[EOS_TOKEN],
            pad_token_id=ids[EOS_TOKEN],
            dtype="float32",
        )
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config).eval()
        model.generation_config = GenerationConfig(
            bos_token_id=ids[BOS_TOKEN],
            eos_token_id=[ids[EOS_TOKEN], ids[IM_END]],
            pad_token_id=ids[EOS_TOKEN],
        )
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote tiny Llama causal LM to %s", out)
    return _finish(tmp, out)
