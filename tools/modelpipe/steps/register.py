"""Register a model, its version and model artifact in the Kubeflow Model Registry, idempotently."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from model_registry import ModelRegistry
from model_registry.types import ModelArtifact, ModelVersion, SupportedTypes

from modelpipe.config import RegistrySettings
from modelpipe.errors import ConfigError, RegistryConflictError, RegistryError, VersionConflictError
from modelpipe.images import parse_pinned_image
from modelpipe.manifest import Manifest, files_digest, manifest_path, manifest_sha256, read_manifest
from modelpipe.model_kinds import (
    MODEL_FORMATS,
    SERVING_RUNTIMES,
    TEXT_GENERATION,
    ModelKind,
    language_model_info,
)
from modelpipe.registry_client import (
    connect_registry,
    core_api,
    find_version,
    merged_properties,
    registry_call,
    returned_id,
    version_model_artifacts,
)
from modelpipe.s3 import parse_s3_uri
from modelpipe.serving_defaults import (
    NO_SERVING_DEFAULTS,
    PROP_DEFAULT_GUIDANCE,
    PROP_DEFAULT_SIZE,
    PROP_DEFAULT_STEPS,
    PROP_SERVED_DEFAULTS,
    ServingDefaults,
)

log = logging.getLogger(__name__)

# Matches the ServingRuntimes' supportedModelFormats entries (diffusers and vLLM, version "1").
MODEL_FORMAT_VERSION = "1"

# Custom property keys written on the model version (string values: the dashboard shows only strings).
PROP_SOURCE = "source"
PROP_SOURCE_REVISION = "source_revision"
PROP_MANIFEST_SHA256 = "manifest_sha256"
PROP_FILES_SHA256 = "model_files_sha256"
PROP_SIZE_BYTES = "size_bytes"
PROP_FILE_COUNT = "file_count"
PROP_VARIANT = "variant"
PROP_RUNTIME_IMAGE = "runtime_image"
PROP_RUNTIME_IMAGE_DIGEST = "runtime_image_digest"
PROP_SERVING_RUNTIME = "serving_runtime"
PROP_PIPELINE_RUN = "pipeline_run"
PROP_MODEL_KIND = "model_kind"
# Language models only: what config.json and the safetensors headers say.
PROP_ARCHITECTURE = "architecture"
PROP_PARAMETER_COUNT = "parameter_count"
PROP_CONTEXT_LENGTH = "context_length"
PROPERTY_KEYS: frozenset[str] = frozenset(
    {
        PROP_SOURCE,
        PROP_SOURCE_REVISION,
        PROP_MANIFEST_SHA256,
        PROP_FILES_SHA256,
        PROP_SIZE_BYTES,
        PROP_FILE_COUNT,
        PROP_VARIANT,
        PROP_RUNTIME_IMAGE,
        PROP_RUNTIME_IMAGE_DIGEST,
        PROP_SERVING_RUNTIME,
        PROP_PIPELINE_RUN,
        PROP_MODEL_KIND,
        PROP_ARCHITECTURE,
        PROP_PARAMETER_COUNT,
        PROP_CONTEXT_LENGTH,
        PROP_DEFAULT_STEPS,
        PROP_DEFAULT_GUIDANCE,
        PROP_DEFAULT_SIZE,
        PROP_SERVED_DEFAULTS,
    }
)

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,62}$")
T = TypeVar("T")
# Rounds of create-or-reuse before concurrent writers are declared a failure: each round either finishes
# or sees one more object another run created, and a registration has three (model, version, artifact).
CONVERGE_ROUNDS = 5


@dataclass(frozen=True)
class RegisterResult:
    """Ids of what was registered.

    Attributes:
        registered_model_id: The registered model.
        model_version_id: The version.
        model_artifact_id: The version's model artifact.
        action: ``created`` (new version), ``updated`` (same artifact registered before) or ``completed``
            (a version left without artifact by an interrupted run got its artifact).
        api_version: REST API version the registry served (``v1`` or ``v1alpha3``).
    """

    registered_model_id: str
    model_version_id: str
    model_artifact_id: str
    action: Literal["created", "updated", "completed"]
    api_version: str


@dataclass(frozen=True)
class _Wanted:
    """The version and artifact this run should leave in the registry."""

    model_name: str
    version_name: str
    model_uri: str
    model_format_name: str
    storage_key: str | None
    storage_path: str
    description: str | None
    properties: dict[str, SupportedTypes]
    model_format_version: str
    # Properties an earlier run may have written that no longer hold (e.g. a wrong runtime image).
    cleared: frozenset[str] = frozenset()

    @property
    def manifest_sha256(self) -> str:
        return str(self.properties[PROP_MANIFEST_SHA256])

    @property
    def files_sha256(self) -> str:
        return str(self.properties[PROP_FILES_SHA256])


def register_model(
    *,
    registry: RegistrySettings,
    model_name: str,
    version_name: str,
    model_uri: str,
    manifest: Path,
    runtime_image: str | None = None,
    vllm_runtime_image: str | None = None,
    storage_key: str | None = None,
    description: str | None = None,
    labels: Sequence[str] | None = None,
    pipeline_run: str | None = None,
    model_format_version: str = MODEL_FORMAT_VERSION,
    model_kind: ModelKind | None = None,
    serving_defaults: ServingDefaults = NO_SERVING_DEFAULTS,
) -> RegisterResult:
    """Register model ``model_name``, version ``version_name`` and its artifact at ``model_uri``.

    A re-run with the same artifact (URI and model content) updates the same version's properties; a version
    left without artifact by an interrupted run is completed.

    Args:
        registry: Registry URL, token and author.
        model_name: Registered model name.
        version_name: Version name, unique within the model.
        model_uri: ``s3://BUCKET/PREFIX`` the model was uploaded to.
        manifest: The model's ``manifest.json`` (from ``modelpipe download``), or its folder; a language
            model's config.json and safetensors headers are read beside it.
        runtime_image: ``REPO@sha256:...`` of the diffusers runtime image, recorded on text-to-image
            versions (the image that serves them).
        vllm_runtime_image: ``REPO@sha256:...`` the vLLM ServingRuntime runs, recorded on text-generation
            versions instead of ``runtime_image``; None records only the ServingRuntime's name. Every
            version records its kind's ServingRuntime name.
        storage_key: Name of the data connection (Secret) that gives access to ``model_uri``.
        description: Version description.
        labels: Dashboard labels (empty-string properties) for the version and model; None means the
            model kind (``text-to-image`` or ``text-generation``).
        pipeline_run: PipelineRun name, recorded for provenance.
        model_format_version: Model format version matched against the ServingRuntime.
        model_kind: The kind the caller expects; None takes the manifest's. The version records the kind
            and registers the format its runtime serves (``diffusers`` or ``vLLM``); a language model's
            version also records its architecture, parameter count and context length.
        serving_defaults: Steps, guidance and size requests without them get, where the model's own
            defaults do not fit (distilled models); recorded on the version, read back by deploy.

    Returns:
        The ids and what was done.

    Raises:
        ConfigError: A name, URI, image reference or label is malformed, or ``model_kind`` is not the
            manifest's.
        ManifestError: The manifest is missing or invalid.
        ModelKindError: A language model's config.json or weights cannot be read.
        VersionConflictError: The version exists with a different artifact URI or model content.
        RegistryError: The registry is unreachable or refused a request.
    """
    wanted = _wanted_state(
        model_name=model_name,
        version_name=version_name,
        model_uri=model_uri,
        manifest=manifest,
        runtime_image=runtime_image,
        vllm_runtime_image=vllm_runtime_image,
        storage_key=storage_key,
        description=description,
        labels=labels,
        pipeline_run=pipeline_run,
        model_format_version=model_format_version,
        model_kind=model_kind,
        serving_defaults=serving_defaults,
    )
    client = connect_registry(registry)
    api_version = client.api_version
    version, artifact, action = _converge(client, wanted)
    _label_registered_model(client, wanted)
    model_id = returned_id(version.registered_model_id, f"version {model_name}:{version_name}'s model")
    version_id = returned_id(version.id, f"version {model_name}:{version_name}")
    artifact_id = returned_id(artifact.id, f"the model artifact of {model_name}:{version_name}")
    log.info(
        "%s %s:%s (model %s, version %s, artifact %s) on API %s",
        action,
        model_name,
        version_name,
        model_id,
        version_id,
        artifact_id,
        api_version,
    )
    return RegisterResult(
        registered_model_id=model_id,
        model_version_id=version_id,
        model_artifact_id=artifact_id,
        action=action,
        api_version=api_version,
    )


def _wanted_state(
    *,
    model_name: str,
    version_name: str,
    model_uri: str,
    manifest: Path,
    runtime_image: str | None,
    vllm_runtime_image: str | None,
    storage_key: str | None,
    description: str | None,
    labels: Sequence[str] | None,
    pipeline_run: str | None,
    model_format_version: str,
    model_kind: ModelKind | None,
    serving_defaults: ServingDefaults = NO_SERVING_DEFAULTS,
) -> _Wanted:
    """Check the inputs and compute the properties and artifact fields to write."""
    for flag, value in (("--model-name", model_name), ("--version-name", version_name)):
        if not value or value != value.strip() or "/" in value:
            raise ConfigError(f"{flag} {value!r} must be non-empty, without '/' or surrounding spaces")
    storage_path = _storage_path(model_uri)
    parsed_manifest = read_manifest(manifest)
    kind = parsed_manifest.model_kind
    if model_kind is not None and model_kind != kind:
        raise ConfigError(
            f"--model-kind {model_kind} but {manifest_path(manifest)} records a {kind} model",
            fix=f"pass --model-kind {kind}, or download the model again with --model-kind {model_kind}",
        )
    properties: dict[str, SupportedTypes] = {
        PROP_SOURCE: parsed_manifest.source,
        PROP_SOURCE_REVISION: parsed_manifest.revision,
        PROP_MANIFEST_SHA256: manifest_sha256(manifest),
        PROP_FILES_SHA256: files_digest(parsed_manifest.files),
        # Sizes as strings: the client sends ints as Int and rejects values beyond +-999,999,999.
        PROP_SIZE_BYTES: str(parsed_manifest.total_size),
        PROP_FILE_COUNT: str(len(parsed_manifest.files)),
        PROP_MODEL_KIND: kind,
    }
    if kind == TEXT_GENERATION:
        properties.update(_language_model_properties(manifest, parsed_manifest))
    if parsed_manifest.variant:
        properties[PROP_VARIANT] = parsed_manifest.variant
    properties.update(serving_defaults.properties())
    properties.update(_runtime_properties(kind, runtime_image, vllm_runtime_image))
    # An LLM version registered before recorded the diffusers image the pipeline built; drop it when the
    # vLLM image is unknown rather than keep a wrong one.
    cleared = frozenset({PROP_RUNTIME_IMAGE, PROP_RUNTIME_IMAGE_DIGEST} - properties.keys())
    if pipeline_run:
        properties[PROP_PIPELINE_RUN] = pipeline_run
    for label in (kind,) if labels is None else labels:
        if not _LABEL.match(label) or label in PROPERTY_KEYS:
            raise ConfigError(
                f"--labels {label!r} is not a valid label",
                fix="use 1-63 letters, digits, ' ._/-', not a property name such as 'source'",
            )
        properties[label] = ""
    return _Wanted(
        model_name=model_name,
        version_name=version_name,
        model_uri=model_uri,
        model_format_name=MODEL_FORMATS[kind],
        storage_key=storage_key or None,
        storage_path=storage_path,
        description=description or None,
        properties=properties,
        model_format_version=model_format_version,
        cleared=cleared if kind == TEXT_GENERATION else frozenset(),
    )


def _runtime_properties(
    kind: ModelKind, runtime_image: str | None, vllm_runtime_image: str | None
) -> dict[str, SupportedTypes]:
    """The ServingRuntime that serves ``kind`` and, when known, the image it runs, pinned by digest."""
    image = runtime_image
    if kind == TEXT_GENERATION:
        if runtime_image:
            # The pipeline passes the diffusers image it built for every kind; vLLM serves this version.
            log.info("text-generation is served by vLLM; --runtime-image %s not recorded", runtime_image)
        image = vllm_runtime_image
    properties: dict[str, SupportedTypes] = {PROP_SERVING_RUNTIME: SERVING_RUNTIMES[kind]}
    if image:
        flag = "VLLM_RUNTIME_IMAGE" if kind == TEXT_GENERATION else "--runtime-image"
        properties[PROP_RUNTIME_IMAGE] = image
        properties[PROP_RUNTIME_IMAGE_DIGEST] = parse_pinned_image(image, flag).digest
    return properties


def _language_model_properties(manifest: Path, parsed: Manifest) -> dict[str, SupportedTypes]:
    """Architecture, parameter count and context length (strings, as the dashboard shows them)."""
    info = language_model_info(
        manifest_path(manifest).parent,
        [item.path for item in parsed.files if item.path.endswith(".safetensors")],
    )
    properties: dict[str, SupportedTypes] = {
        PROP_ARCHITECTURE: info.architecture,
        PROP_PARAMETER_COUNT: str(info.parameter_count),
    }
    if info.context_length is not None:
        properties[PROP_CONTEXT_LENGTH] = str(info.context_length)
    return properties


def _storage_path(model_uri: str) -> str:
    """The key prefix inside the bucket, which the data connection (storage key) is for."""
    try:
        location = parse_s3_uri(model_uri)
    except ConfigError as err:
        raise ConfigError(f"--model-uri: {err.message}", fix=err.fix) from err
    if not location.key:
        raise ConfigError(
            f"--model-uri {model_uri!r} names a bucket, not a model prefix",
            fix="pass the MODEL_URI result of `modelpipe upload` (s3://BUCKET/PREFIX)",
        )
    return location.key


def _converge(
    client: ModelRegistry, wanted: _Wanted
) -> tuple[ModelVersion, ModelArtifact, Literal["created", "updated", "completed"]]:
    """Create or complete the version, treating objects another run created meanwhile as already there.

    Concurrent identical runs race on each create (model, version, artifact): the loser gets 409, or the
    client's own "already exists" check. Either way the object is re-read and the next round takes the
    existing-version path, where :func:`_refuse_conflict` still rejects a version that differs.

    Raises:
        VersionConflictError: The version exists with another artifact URI or model content.
        RegistryError: A request failed, or the registry kept changing for every round.
    """
    for round_ in range(1, CONVERGE_ROUNDS + 1):
        try:
            return _converge_once(client, wanted)
        except VersionConflictError:
            raise
        except RegistryConflictError as err:
            log.info("round %d: %s; re-reading what another run created", round_, err.message)
        except RegistryError:
            # The client refuses an existing version with a generic StoreError; only a version that is now
            # there makes it a race rather than a failure.
            if (
                _registry_call(
                    "re-reading the version", find_version, client, wanted.model_name, wanted.version_name
                )
                is None
            ):
                raise
            log.info("round %d: the version appeared meanwhile; re-reading it", round_)
    raise RegistryError(
        f"{wanted.model_name}:{wanted.version_name} kept changing under concurrent writers "
        f"for {CONVERGE_ROUNDS} rounds",
        fix="re-run register once the other runs finished",
    )


def _converge_once(
    client: ModelRegistry, wanted: _Wanted
) -> tuple[ModelVersion, ModelArtifact, Literal["created", "updated", "completed"]]:
    """One round: create model, version and artifact, or check and refresh the existing version."""
    version = _registry_call(
        f"looking up {wanted.model_name}:{wanted.version_name}",
        find_version,
        client,
        wanted.model_name,
        wanted.version_name,
    )
    if version is None:
        version = _create_version(client, wanted)
        artifact = _model_artifact(client, version, wanted.model_name)
        if artifact is None:
            raise RegistryError(
                f"registered {wanted.model_name}:{wanted.version_name} but its model artifact is missing"
            )
        return version, artifact, "created"
    artifact = _model_artifact(client, version, wanted.model_name)
    _refuse_conflict(version, artifact, wanted)
    action: Literal["updated", "completed"] = "updated" if artifact is not None else "completed"
    return version, _update_version(client, version, artifact, wanted), action


def _registry_call(what: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    return registry_call(
        what, lambda: fn(*args, **kwargs), rerun_hint="re-run register; it completes a half-done version"
    )


def _create_version(client: ModelRegistry, wanted: _Wanted) -> ModelVersion:
    """Model (if new), version and artifact through the client's own ``register_model``."""
    what = f"registering {wanted.model_name}:{wanted.version_name}"
    _registry_call(
        what,
        client.register_model,
        wanted.model_name,
        wanted.model_uri,
        model_format_name=wanted.model_format_name,
        model_format_version=wanted.model_format_version,
        version=wanted.version_name,
        storage_key=wanted.storage_key,
        storage_path=wanted.storage_path,
        version_description=wanted.description,
        metadata=wanted.properties,
    )
    version = _registry_call(what, find_version, client, wanted.model_name, wanted.version_name)
    if version is None:
        raise RegistryError(f"{what}: the version is missing right after it was created")
    return version


def _model_artifact(client: ModelRegistry, version: ModelVersion, model_name: str) -> ModelArtifact | None:
    """The version's model artifact: the one named after the model (client convention), else the first."""
    version_id = returned_id(version.id, f"version of {model_name}")
    artifacts = _registry_call(
        f"listing artifacts of version {version_id}", version_model_artifacts, client, version_id
    )
    named = [artifact for artifact in artifacts if artifact.name == model_name]
    return (named or artifacts or [None])[0]


def _refuse_conflict(version: ModelVersion, artifact: ModelArtifact | None, wanted: _Wanted) -> None:
    """Raise if the existing version holds a different artifact URI or model content."""
    props: Mapping[str, SupportedTypes] = version.custom_properties or {}
    uri_differs = artifact is not None and artifact.uri != wanted.model_uri
    if PROP_FILES_SHA256 in props:
        # Content identity: a re-download rewrites manifest.json (new timestamp) but not the files.
        content_differs = props[PROP_FILES_SHA256] != wanted.files_sha256
    else:
        content_differs = (
            PROP_MANIFEST_SHA256 in props and props[PROP_MANIFEST_SHA256] != wanted.manifest_sha256
        )
    if not (uri_differs or content_differs):
        return
    old_uri = artifact.uri if artifact is not None else "(no artifact yet)"
    old_sha = props.get(PROP_MANIFEST_SHA256, "(not recorded)")
    raise VersionConflictError(
        f"{wanted.model_name}:{wanted.version_name} (version id {version.id}) is registered with "
        f"{old_uri} (manifest sha256 {old_sha}); this run has {wanted.model_uri} "
        f"(manifest sha256 {wanted.manifest_sha256})",
        fix="pass a new --version-name (e.g. include the source revision); versions are immutable",
    )


def _update_version(
    client: ModelRegistry, version: ModelVersion, artifact: ModelArtifact | None, wanted: _Wanted
) -> ModelArtifact:
    """Merge properties into the version and create or refresh its model artifact."""
    what = f"updating {wanted.model_name}:{wanted.version_name}"
    # The version was just read: merge into it here rather than read it again (update_version_properties).
    version.custom_properties = merged_properties(
        version.custom_properties, wanted.properties, remove=wanted.cleared
    )
    if wanted.description:
        version.description = wanted.description
    _registry_call(what, client.update, version)
    if artifact is None:
        log.info("version %s has no model artifact (interrupted run): adding it", version.id)
        new_artifact = ModelArtifact(
            name=wanted.model_name,
            uri=wanted.model_uri,
            model_format_name=wanted.model_format_name,
            model_format_version=wanted.model_format_version,
            storage_key=wanted.storage_key,
            storage_path=wanted.storage_path,
        )
        return _registry_call(
            what,
            client.async_runner,
            core_api(client).upsert_model_version_artifact(
                new_artifact, returned_id(version.id, f"version {wanted.version_name}")
            ),
        )
    artifact.model_format_name = wanted.model_format_name
    artifact.model_format_version = wanted.model_format_version
    artifact.storage_key = wanted.storage_key or artifact.storage_key
    artifact.storage_path = wanted.storage_path
    return _registry_call(what, client.update, artifact)


def _label_registered_model(client: ModelRegistry, wanted: _Wanted) -> None:
    """Add the labels (and a description if it has none) to the registered model, for the model list view."""
    model = _registry_call(
        f"reading model {wanted.model_name}", client.get_registered_model, wanted.model_name
    )
    if model is None:
        raise RegistryError(f"registered model {wanted.model_name} vanished during registration")
    existing = dict(model.custom_properties or {})
    labels = {key: value for key, value in wanted.properties.items() if value == "" and key not in existing}
    needs_description = wanted.description is not None and not model.description
    if not labels and not needs_description:
        return
    model.custom_properties = merged_properties(existing, labels)
    if needs_description:
        model.description = wanted.description
    _registry_call(f"labelling model {wanted.model_name}", client.update, model)
