"""Resource kinds of the Model Registry REST API and validation of request bodies against them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model

from modelpipe.local.registry.errors import BadRequestError, UnprocessableError

ID_PATTERN = r"^[1-9][0-9]{0,8}$"
IdStr = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Int64Str = Annotated[str, StringConstraints(pattern=r"^-?[0-9]{1,19}$")]
Int32Str = Annotated[str, StringConstraints(pattern=r"^-?([1-9][0-9]{0,8}|0)$")]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
# MLMD keeps names and external ids in VARCHAR(255) columns; an owned entity's name is stored as
# "<parentId>:<name>", so the prefix counts too (upstream test_register_version_long_name).
MAX_NAME_LENGTH = 255
# Real bodies nest four levels (customProperties -> key -> value); anything far deeper is hostile.
MAX_JSON_DEPTH = 32


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MetadataIntValue(_Value):
    metadataType: Literal["MetadataIntValue"]
    int_value: Int32Str


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class MetadataDoubleValue(_Value):
    metadataType: Literal["MetadataDoubleValue"]
    double_value: FiniteFloat


class MetadataStringValue(_Value):
    metadataType: Literal["MetadataStringValue"]
    string_value: str


class MetadataBoolValue(_Value):
    metadataType: Literal["MetadataBoolValue"]
    bool_value: bool


class MetadataStructValue(_Value):
    metadataType: Literal["MetadataStructValue"]
    struct_value: str


class MetadataProtoValue(_Value):
    metadataType: Literal["MetadataProtoValue"]
    type: str
    proto_value: str


MetadataValue = Annotated[
    MetadataIntValue
    | MetadataDoubleValue
    | MetadataStringValue
    | MetadataBoolValue
    | MetadataStructValue
    | MetadataProtoValue,
    Field(discriminator="metadataType"),
]

_LIVE_ARCHIVED = Literal["LIVE", "ARCHIVED"]
_ARTIFACT_STATE = Literal[
    "UNKNOWN", "PENDING", "LIVE", "MARKED_FOR_DELETION", "DELETED", "ABANDONED", "REFERENCE"
]


@dataclass(frozen=True, eq=False)
class Kind:
    """One resource type: its table, its own fields and how it hangs under a parent.

    Attributes:
        key: The API's type name (``registered-model``, ``model-artifact``, ...); artifactType for artifacts.
        label: Name used in messages (``RegisteredModel``).
        table: ``context`` (shared id sequence) or ``artifact`` (own sequence).
        fields: Mutable type-specific fields (JSON name -> annotation).
        create_only: Fields accepted only on create (parent and model ids); immutable afterwards.
        parent_field: The create-only field holding the parent id, if the kind has a parent.
        required: Fields a create must carry (missing or empty -> 422).
        refs: Id fields that must name an existing entity of the given kind key.
        defaults: Values shown in responses when a field was never set.
    """

    key: str
    label: str
    table: Literal["context", "artifact"]
    fields: Mapping[str, Any]
    create_only: Mapping[str, Any] = field(default_factory=dict)
    parent_field: str | None = None
    required: tuple[str, ...] = ()
    refs: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_artifact(self) -> bool:
        return self.table == "artifact"


REGISTERED_MODEL = Kind(
    key="registered-model",
    label="RegisteredModel",
    table="context",
    fields={
        "owner": str,
        "state": _LIVE_ARCHIVED,
        "readme": str,
        "maturity": str,
        "language": list[str],
        "tasks": list[str],
        "provider": str,
        "logo": str,
        "license": str,
        "licenseLink": str,
        "libraryName": str,
    },
    required=("name",),
    defaults={"state": "LIVE"},
)
MODEL_VERSION = Kind(
    key="model-version",
    label="ModelVersion",
    table="context",
    fields={"state": _LIVE_ARCHIVED, "author": str},
    create_only={"registeredModelId": IdStr},
    parent_field="registeredModelId",
    required=("name", "registeredModelId"),
    refs={"registeredModelId": "registered-model"},
    defaults={"state": "LIVE"},
)
SERVING_ENVIRONMENT = Kind(
    key="serving-environment", label="ServingEnvironment", table="context", fields={}, required=("name",)
)
INFERENCE_SERVICE = Kind(
    key="inference-service",
    label="InferenceService",
    table="context",
    fields={"modelVersionId": IdStr, "runtime": str, "desiredState": Literal["DEPLOYED", "UNDEPLOYED"]},
    create_only={"registeredModelId": IdStr, "servingEnvironmentId": IdStr},
    parent_field="servingEnvironmentId",
    required=("registeredModelId", "servingEnvironmentId"),
    refs={
        "servingEnvironmentId": "serving-environment",
        "registeredModelId": "registered-model",
        "modelVersionId": "model-version",
    },
    defaults={"desiredState": "DEPLOYED"},
)
MODEL_ARTIFACT = Kind(
    key="model-artifact",
    label="ModelArtifact",
    table="artifact",
    fields={
        name: str
        for name in (
            "uri",
            "modelFormatName",
            "modelFormatVersion",
            "storageKey",
            "storagePath",
            "serviceAccountName",
            "modelSourceKind",
            "modelSourceClass",
            "modelSourceGroup",
            "modelSourceId",
            "modelSourceName",
        )
    }
    | {"state": _ARTIFACT_STATE},
    defaults={"state": "UNKNOWN"},
)
DOC_ARTIFACT = Kind(
    key="doc-artifact",
    label="DocArtifact",
    table="artifact",
    fields={"uri": str, "state": _ARTIFACT_STATE},
    defaults={"state": "UNKNOWN"},
)
DATASET_ARTIFACT = Kind(
    key="dataset-artifact",
    label="DataSet",
    table="artifact",
    fields={name: str for name in ("digest", "sourceType", "source", "schema", "profile", "uri")}
    | {"state": _ARTIFACT_STATE},
    defaults={"state": "UNKNOWN"},
)
METRIC = Kind(
    key="metric",
    label="Metric",
    table="artifact",
    fields={"value": FiniteFloat, "timestamp": Int64Str, "step": Int64, "state": _ARTIFACT_STATE},
    defaults={"state": "UNKNOWN"},
)
PARAMETER = Kind(
    key="parameter",
    label="Parameter",
    table="artifact",
    fields={
        "value": str,
        "parameterType": Literal["string", "number", "boolean", "object"],
        "state": _ARTIFACT_STATE,
    },
    defaults={"state": "UNKNOWN"},
)

CONTEXT_KINDS = {k.key: k for k in (REGISTERED_MODEL, MODEL_VERSION, SERVING_ENVIRONMENT, INFERENCE_SERVICE)}
ARTIFACT_KINDS = {k.key: k for k in (MODEL_ARTIFACT, DOC_ARTIFACT, DATASET_ARTIFACT, METRIC, PARAMETER)}
KINDS = CONTEXT_KINDS | ARTIFACT_KINDS

_COMMON_UPDATE: dict[str, Any] = {
    "description": str,
    "externalId": str,
    "customProperties": dict[str, MetadataValue],
}
_READ_ONLY: dict[str, Any] = {"id": str, "createTimeSinceEpoch": str, "lastUpdateTimeSinceEpoch": str}
_ARTIFACT_READ_ONLY: dict[str, Any] = {"experimentId": IdStr, "experimentRunId": IdStr}
Variant = Literal["create", "update", "full"]


@cache
def request_model(kind: Kind, variant: Variant) -> type[BaseModel]:
    """The strict pydantic model for a body of ``kind``: unknown fields and wrong types are rejected.

    ``full`` is the entity schema some create endpoints take (read-only fields allowed and ignored).
    Every field is optional here; required fields are checked by :func:`require_fields` (422, not 400).
    """
    spec: dict[str, Any] = dict(_COMMON_UPDATE) | dict(kind.fields)
    if kind.is_artifact:
        spec["artifactType"] = str
    if variant != "update":
        spec |= {"name": str} | dict(kind.create_only)
    if variant == "full":
        spec |= _READ_ONLY | (_ARTIFACT_READ_ONLY if kind.is_artifact else {})
    # Aliases keep JSON names such as "schema" from clashing with pydantic's own attributes.
    definitions: dict[str, Any] = {
        f"f_{name}": (annotation | None, Field(None, alias=name)) for name, annotation in spec.items()
    }
    model = create_model(  # type: ignore[call-overload]
        f"{kind.label}{variant.title()}",
        __config__=ConfigDict(extra="forbid", strict=True, populate_by_name=False),
        **definitions,
    )
    return model  # type: ignore[no-any-return]


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be one JSON object.

    Strings that could be stored but not served back (lone UTF-16 surrogates, which JSON escapes allow but
    UTF-8 cannot encode) are refused here, before anything is written: one such value in a row would make
    every later list that includes it fail.

    Raises:
        BadRequestError: The body is not JSON, not an object, nested too deeply or holds unencodable text.
    """
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRequestError(f"request body is not valid JSON: {err}") from err
    except RecursionError as err:
        raise BadRequestError(f"request body nests deeper than {MAX_JSON_DEPTH} levels") from err
    if not isinstance(data, dict):
        raise BadRequestError("request body must be a JSON object")
    check_json_text(data)
    return data


def check_json_text(data: Any) -> None:
    """Walk decoded JSON without recursion: bounded depth, every key and string valid Unicode text.

    Raises:
        BadRequestError: Naming the path of the first offending value.
    """
    stack: list[tuple[Any, str, int]] = [(data, "body", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequestError(f"request body nests deeper than {MAX_JSON_DEPTH} levels (at {path})")
        if isinstance(value, str):
            check_text(value, path)
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{_printable(key)}"
                check_text(key, where, what="key")
                stack.append((item, where, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))


def check_text(value: str, where: str, *, what: str = "value") -> None:
    """Refuse text UTF-8 cannot encode (lone surrogates such as ``\\udc00``).

    Raises:
        BadRequestError: Naming where the text was found, the offending code point escaped.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = _printable(value[err.start : err.end])
        raise BadRequestError(
            f"{what} {where} holds {bad}, a lone UTF-16 surrogate, which is not valid Unicode text"
        ) from err


def _printable(text: str) -> str:
    """``text`` with unencodable code points escaped, safe to put in an error message."""
    return text[:64].encode("utf-8", "backslashreplace").decode("utf-8")


def validate_body(kind: Kind, variant: Variant, data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``data`` for ``kind``; returns the non-null fields under their JSON names.

    Raises:
        BadRequestError: An unknown field, a wrong type, a bad enum value or id pattern, a wrong artifactType.
    """
    if kind.is_artifact and data.get("artifactType") not in (None, kind.key):
        raise BadRequestError(f"artifactType {_short(data.get('artifactType'))} does not match {kind.key!r}")
    try:
        parsed = request_model(kind, variant).model_validate(dict(data))
    except ValidationError as err:
        raise BadRequestError(describe_validation_error(err)) from err
    values = parsed.model_dump(by_alias=True, exclude_none=True)
    values.pop("artifactType", None)
    return values


def require_fields(kind: Kind, values: Mapping[str, Any]) -> None:
    """Raise 422 naming the first required field that is missing or empty, worded as the real server does."""
    missing = [name for name in kind.required if values.get(name) in (None, "")]
    if missing:
        raise UnprocessableError(f"required field '{missing[0]}' is zero value.")


def check_name_length(kind: Kind, name: str, parent_id: int | None) -> None:
    """Refuse a name that does not fit the real server's column once prefixed with ``<parentId>:``.

    Raises:
        BadRequestError: Naming the length, the prefix and the limit.
    """
    prefix = f"{parent_id}:" if parent_id is not None else ""
    if len(prefix) + len(name) > MAX_NAME_LENGTH:
        held = f" plus its {prefix!r} prefix" if prefix else ""
        raise BadRequestError(
            f"{kind.label} name has {len(name)} characters{held}; at most {MAX_NAME_LENGTH} fit"
        )


def artifact_kind(data: Mapping[str, Any], *, default: str | None = None) -> Kind:
    """The artifact kind named by ``artifactType`` (or ``default`` when absent).

    Raises:
        BadRequestError: artifactType is missing or not one the API knows.
    """
    key = data.get("artifactType", default)
    if not isinstance(key, str) or key not in ARTIFACT_KINDS:
        raise BadRequestError(f"artifactType must be one of {', '.join(ARTIFACT_KINDS)}, got {_short(key)}")
    return ARTIFACT_KINDS[key]


def _short(value: Any) -> str:
    text = _printable(repr(value))
    return text if len(text) <= 80 else text[:77] + "..."


def describe_validation_error(err: ValidationError) -> str:
    """One line naming each offending field (at most three); an unknown field worded as the Go server does."""
    first = err.errors()[0] if err.errors() else None
    if first is not None and first["type"] == "extra_forbidden":
        return f'json: unknown field "{first["loc"][-1]}"'
    parts = []
    for detail in err.errors()[:3]:
        where = ".".join(str(p) for p in detail["loc"] if not str(p).startswith("Metadata")) or "body"
        if detail["type"] == "extra_forbidden":
            parts.append(f"unknown field {where!r}")
        else:
            parts.append(f"field {where!r}: {detail['msg']}")
    return "; ".join(parts)
