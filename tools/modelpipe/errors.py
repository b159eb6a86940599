"""Known failures: each carries what failed and how to fix it; the CLI prints one line and exits 1."""

from __future__ import annotations


class ModelpipeError(Exception):
    """Base of every known failure.

    Args:
        message: What failed, naming the file, URI, variable or version involved (never a secret value).
        fix: A short hint on how to fix it, printed after the message.
    """

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def one_line(self) -> str:
        """The message and fix as the single line the CLI prints."""
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message


class ConfigError(ModelpipeError, ValueError):
    """A flag or environment variable is missing or malformed."""


class InvalidSourceError(ModelpipeError, ValueError):
    """A model source URI cannot be parsed or resolved."""


class NotADiffusersModelError(ModelpipeError, ValueError):
    """A folder or repository is not a diffusers pipeline (no model_index.json or missing components)."""


class ChecksumMismatchError(ModelpipeError):
    """A file's size or sha256 differs from the manifest."""


class ManifestError(ModelpipeError):
    """manifest.json is missing, unreadable or inconsistent."""


class StorageError(ModelpipeError):
    """An S3 operation failed (endpoint unreachable, bucket missing, object unreadable)."""


class StorageAuthError(StorageError):
    """S3 refused the credentials."""


class RegistryError(ModelpipeError):
    """The Model Registry refused a request or is unreachable."""


class RegistryConflictError(RegistryError):
    """The registry answered 409: an object with that name or externalId appeared (maybe concurrently)."""


class VersionConflictError(RegistryError):
    """A model version with this name exists with a different artifact."""


class BuildError(ModelpipeError):
    """Building or pushing the runtime image failed."""


class DeployError(ModelpipeError):
    """The InferenceService or local runtime did not become ready."""


class BenchmarkError(ModelpipeError):
    """The endpoint could not be benchmarked (unreachable, errors, bad prompt set)."""


class QualityGateError(ModelpipeError):
    """A measured value failed a required gate (measured vs required in the message)."""


class LocalRunError(ModelpipeError):
    """The local Tekton runner or a local stand-in failed."""


class UnsupportedTektonFeatureError(LocalRunError, ValueError):
    """The local runner met a Tekton feature it does not implement (named in the message)."""


class BenchmarkResultsError(ModelpipeError, ValueError):
    """A benchmark results.json is missing, not JSON, or does not match the documented schema."""


class TektonSpecError(LocalRunError, ValueError):
    """A Pipeline or Task is invalid: unknown field, task, param, workspace or variable reference."""


class PipelineTaskFailedError(LocalRunError):
    """A task of a locally run pipeline failed; the message names the task, step, exit code and log."""


class SourceUnavailableError(ModelpipeError):
    """The model source (Hugging Face Hub or a mirror) could not be reached or a file could not be fetched."""


class EvaluationError(ModelpipeError):
    """lm-eval or guidellm failed against the endpoint, or their output could not be read."""


class UnknownTaskError(ConfigError):
    """lm-eval does not know a requested task (refused before any request is sent)."""


class ModelKindError(ModelpipeError, ValueError):
    """A model is not of the kind asked for (a diffusers pipeline given text-generation, or the reverse),
    or a language model lacks what serving it needs (config, tokenizer, safetensors weights)."""


class ModelCheckError(ModelpipeError):
    """The serving runtime could not load a downloaded model; names the component and why."""

    def __init__(self, component: str, reason: str, *, fix: str | None = None) -> None:
        super().__init__(f"model check failed: component {component!r}: {reason}", fix=fix)
        self.component = component
        self.reason = reason
