"""Tokenizers built in code (no Hub, no sentencepiece model file): CLIP BPE, T5 Unigram and Gemma BPE.

Each is a small real tokenizer of its family's kind, saved with ``save_pretrained`` like the Hub's, so the
pipelines load them through the same classes as the full-size models.
"""

from __future__ import annotations

from typing import Any

# Enough merges and pieces that common English prompts tokenize into a few multi-letter pieces.
WORDS = (
    "a the of and in on with photo cat dog red blue green city night sky sea mountain forest portrait "
    "painting watercolor oil style light sun moon flower tree house car robot astronaut horse bird"
).split()
T5_EXTRA_IDS = 100
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;()\"/&"


def _bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable-unicode table CLIP's BPE tokenizer uses (GPT-2 scheme)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def _clip_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A small byte-level BPE vocabulary and merge list in CLIP's format (specials last)."""
    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for symbol in [*symbols, *(s + "</w>" for s in symbols)]:
        vocab[symbol] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        pieces = [*word[:-1], word[-1] + "</w>"]
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in merges:
                merges.append(pair)
                vocab.setdefault(pair[0] + pair[1], len(vocab))
            pieces = [pair[0] + pair[1], *pieces[2:]]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def clip_tokenizer() -> Any:
    """CLIP's byte-level BPE tokenizer (77 tokens), as ``CLIPTokenizer``."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocabulary()
    # transformers' annotation says list[str]; its BPE backend takes (left, right) pairs as given here.
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)  # type: ignore[arg-type]


def t5_tokenizer(model_max_length: int = 512) -> Any:
    """A T5 Unigram tokenizer: <pad>=0, </s>=1, <unk>=2, word pieces, then the 100 ``<extra_id_N>`` sentinels.

    The real T5 vocabulary is a sentencepiece Unigram model with the sentinels at the end in reverse order;
    this one has the same structure with a few hundred pieces, wrapped in ``T5TokenizerFast``.
    """
    from transformers import T5TokenizerFast  # type: ignore[attr-defined]  # exported lazily, no stub

    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    seen = {piece for piece, _ in pieces}
    for word in WORDS:
        for piece, score in (("▁" + word, -1.0), (word, -1.5)):
            if piece not in seen:
                seen.add(piece)
                pieces.append((piece, score))
    for char in _LETTERS:
        for piece in ("▁" + char, char):
            if piece not in seen:
                seen.add(piece)
                pieces.append((piece, -5.0))
    pieces += [(f"<extra_id_{i}>", 0.0) for i in range(T5_EXTRA_IDS - 1, -1, -1)]
    return T5TokenizerFast(vocab=pieces, extra_ids=T5_EXTRA_IDS, model_max_length=model_max_length)


def gemma_tokenizer() -> Any:
    """A Gemma-style BPE tokenizer with byte fallback (<pad>=0, <eos>=1, <bos>=2, <unk>=3, <mask>=4)."""
    from transformers import GemmaTokenizer

    vocab: dict[str, int] = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for char in ["▁", *_LETTERS]:
        vocab.setdefault(char, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        pieces = ["▁", *word]
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            if pair not in merges:
                merges.append(pair)
                vocab.setdefault(pair[0] + pair[1], len(vocab))
            pieces = [pair[0] + pair[1], *pieces[2:]]
    # transformers' annotation says list[str]; its BPE backend takes (left, right) pairs as given here.
    return GemmaTokenizer(vocab=vocab, merges=merges, model_max_length=8192)  # type: ignore[arg-type]
