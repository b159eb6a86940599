"""The tokenizer of a causal LM: which files make it, and fetching only those from the model's S3 prefix.

lm-eval and guidellm count tokens client-side, so they need the model's tokenizer but never its weights;
the model-testing pipeline has only the model's s3:// URI, so the few tokenizer files are fetched from there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from modelpipe.config import S3Settings
from modelpipe.errors import ConfigError
from modelpipe.model_kinds import TOKENIZER_FILES
from modelpipe.s3 import download_objects, list_objects, make_s3_client, parse_s3_uri

log = logging.getLogger(__name__)

# config.json and generation_config.json name the tokenizer class and special tokens for some models.
_FETCHED = TOKENIZER_FILES | {"config.json", "generation_config.json"}
_REQUIRED_ANY = ("tokenizer.json", "tokenizer_config.json")


def has_tokenizer(folder: Path) -> bool:
    """True when ``folder`` holds a tokenizer transformers can load (tokenizer.json or its config)."""
    return any((folder / name).is_file() for name in _REQUIRED_ANY)


def resolve_tokenizer(source: str, *, cache_dir: Path, s3: S3Settings) -> Path:
    """A local folder with the tokenizer: ``source`` itself, or its files fetched from an s3:// model prefix.

    Args:
        source: A model folder, or ``s3://BUCKET/PREFIX`` of an uploaded model.
        cache_dir: Where fetched files go (kept files with the same size and sha256 are not fetched again).
        s3: The data connection, for s3:// sources.

    Returns:
        The folder to hand to lm-eval and guidellm.

    Raises:
        ConfigError: The folder or prefix holds no tokenizer.
        StorageError: Listing or fetching failed.
    """
    if not source.startswith("s3://"):
        folder = Path(source).expanduser().resolve()
        if not has_tokenizer(folder):
            raise ConfigError(
                f"no tokenizer in {folder} (tokenizer.json or tokenizer_config.json)",
                fix="pass the model folder, or the model's s3:// URI",
            )
        return folder
    location = parse_s3_uri(source)
    client = make_s3_client(s3)
    wanted = sorted(name for name in list_objects(client, location) if name in _FETCHED)
    if not any(name in wanted for name in _REQUIRED_ANY):
        raise ConfigError(
            f"no tokenizer under {source} (tokenizer.json or tokenizer_config.json)",
            fix="pass the s3:// URI of an uploaded text-generation model",
        )
    log.info("fetching %d tokenizer files from %s", len(wanted), source)
    download_objects(client, location, wanted, cache_dir)
    return cache_dir.resolve()
