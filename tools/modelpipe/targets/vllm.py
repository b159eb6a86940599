"""vLLM server options: one set of flags for the InferenceService on KServe and the local vLLM process."""

from __future__ import annotations

from dataclasses import dataclass

from modelpipe.errors import ConfigError
from modelpipe.model_kinds import SERVING_RUNTIMES, TEXT_GENERATION

# vLLM's own choices for --dtype ("float" is float32, "half" float16).
DTYPES: tuple[str, ...] = ("auto", "half", "float16", "bfloat16", "float", "float32")
# The ServingRuntime gitops/base ships for text-generation models (format vLLM).
VLLM_SERVING_RUNTIME = SERVING_RUNTIMES[TEXT_GENERATION]


@dataclass(frozen=True)
class VllmOptions:
    """Per-model vLLM settings; None leaves vLLM's default (or, on KServe, the ServingRuntime's).

    Attributes:
        tensor_parallel_size: GPUs one replica shards the model over (``--tensor-parallel-size``).
        max_model_len: Context length to serve, at most the model's (``--max-model-len``); smaller saves
            KV-cache memory.
        dtype: Weight and activation dtype (``--dtype``), one of :data:`DTYPES`.
        gpu_memory_utilization: Fraction of each GPU's memory vLLM may take (``--gpu-memory-utilization``).
    """

    tensor_parallel_size: int | None = None
    max_model_len: int | None = None
    dtype: str | None = None
    gpu_memory_utilization: float | None = None

    def validate(self) -> None:
        """Refuse values vLLM would reject only after minutes of loading, naming the flag.

        Raises:
            ConfigError: A value is out of range or not one of vLLM's choices.
        """
        if self.tensor_parallel_size is not None and self.tensor_parallel_size < 1:
            raise ConfigError(
                f"--tensor-parallel-size {self.tensor_parallel_size} must be 1 or more",
                fix="pass the number of GPUs to shard the model over",
            )
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ConfigError(
                f"--max-model-len {self.max_model_len} must be a positive token count", fix="e.g. 4096"
            )
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ConfigError(
                f"--dtype {self.dtype!r} is not a vLLM dtype", fix=f"use one of {', '.join(DTYPES)}"
            )
        utilization = self.gpu_memory_utilization
        if utilization is not None and not 0 < utilization <= 1:
            raise ConfigError(
                f"--gpu-memory-utilization {utilization} must be in (0, 1]", fix="e.g. 0.9 for 90%"
            )

    def server_args(self) -> list[str]:
        """The vLLM flags for the options that are set, in ``--flag=value`` form."""
        values = {
            "--tensor-parallel-size": self.tensor_parallel_size,
            "--max-model-len": self.max_model_len,
            "--dtype": self.dtype,
            "--gpu-memory-utilization": self.gpu_memory_utilization,
        }
        return [f"{flag}={value}" for flag, value in values.items() if value is not None]


def parse_vllm_options(
    *, tensor_parallel_size: str, max_model_len: str, dtype: str, gpu_memory_utilization: str
) -> VllmOptions:
    """Options from flag strings, where "" means "not set" (Tekton passes unset params as "").

    Raises:
        ConfigError: A number does not parse, or a value is out of range.
    """
    options = VllmOptions(
        tensor_parallel_size=_integer("--tensor-parallel-size", tensor_parallel_size),
        max_model_len=_integer("--max-model-len", max_model_len),
        dtype=dtype or None,
        gpu_memory_utilization=_fraction("--gpu-memory-utilization", gpu_memory_utilization),
    )
    options.validate()
    return options


def _integer(flag: str, text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError as err:
        raise ConfigError(f"{flag} {text!r} is not an integer") from err


def _fraction(flag: str, text: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError as err:
        raise ConfigError(f"{flag} {text!r} is not a number", fix="e.g. 0.9") from err
