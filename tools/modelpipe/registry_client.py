"""Connect the official ``model-registry`` client to a Kubeflow Model Registry; typed helpers on top."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from model_registry import ModelRegistry
from model_registry.core import ModelRegistryAPIClient
from model_registry.exceptions import StoreError
from model_registry.types import ListOptions, ModelArtifact, ModelVersion, RegisteredModel, SupportedTypes
from mr_openapi import (
    ApiClient,
    InferenceService,
    InferenceServiceCreate,
    InferenceServiceState,
    InferenceServiceUpdate,
    MetadataValue,
    ModelRegistryServiceApi,
    ServingEnvironment,
    ServingEnvironmentCreate,
)
from mr_openapi import exceptions as mr_exceptions
from mr_openapi.rest import RESTResponse

from modelpipe.config import (
    DEFAULT_REGISTRY_TIMEOUT,
    MODEL_REGISTRY_TIMEOUT,
    MODEL_REGISTRY_TOKEN,
    MODEL_REGISTRY_URL,
    RegistrySettings,
)
from modelpipe.errors import ConfigError, RegistryConflictError, RegistryError
from modelpipe.redaction import register_secret

log = logging.getLogger(__name__)

API_ROOT = "/api/model_registry"
# The path the installed client (model-registry 0.3.18) hard-codes in every generated operation.
CLIENT_API_VERSION = "v1"
# Newest first: older OpenShift AI registries serve only v1alpha3 (404 on v1).
SUPPORTED_API_VERSIONS: tuple[str, ...] = ("v1", "v1alpha3")
_DEFAULT_PORTS = {"http": 80, "https": 443}
T = TypeVar("T")
# Registry ids are int32 decimal strings, as the REST schema requires.
_ID = re.compile(r"^[1-9][0-9]{0,8}$")
# Retry budget per request: reads and PATCHes (which set values, so a replay is harmless) get this many
# attempts with exponential backoff; a POST is sent once (a replayed create answers 409, which register
# treats as "already there"). Worst case per request: ATTEMPTS x timeout + the backoff sum.
REGISTRY_ATTEMPTS = 3
_BACKOFF_SECONDS = (0.5, 1.0)
_REPLAYABLE = frozenset({"GET", "HEAD", "PATCH"})
_RETRY_STATUSES = frozenset({502, 503, 504})


class RegistryTimeoutError(TimeoutError):
    """A registry request got no complete answer within its timeout, on every attempt.

    Attributes:
        url: The request URL (no credentials: tokens travel in a header).
        timeout: Seconds allowed per attempt.
        attempts: Attempts made.
    """

    def __init__(self, url: str, timeout: float, attempts: int) -> None:
        self.url, self.timeout, self.attempts = url, timeout, attempts
        plural = "s" if attempts > 1 else ""
        super().__init__(f"no answer from {url} within {timeout:g} s ({attempts} attempt{plural})")


def request_budget(timeout: float) -> float:
    """Longest one replayable registry request can take, retries and backoff included (seconds)."""
    return REGISTRY_ATTEMPTS * timeout + sum(_BACKOFF_SECONDS[: REGISTRY_ATTEMPTS - 1])


def normalize_registry_url(url: str | None) -> str:
    """The registry base URL with an explicit port and no trailing slash.

    The client appends ``:<port>`` to any address without one (8080 for http), which breaks addresses with a
    path; an explicit port keeps ``https://host`` meaning port 443 and ``http://host`` port 80, as in any URL.

    Raises:
        ConfigError: The URL is unset, has no http(s) scheme, or points at an API path instead of the base.
    """
    if not url:
        raise ConfigError(
            "Model Registry URL not set",
            fix=f"pass --registry-url or export {MODEL_REGISTRY_URL}=https://HOST",
        )
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(
            f"Model Registry URL {url!r} must start with http:// or https:// and name a host",
            fix="e.g. http://127.0.0.1:8080 or https://registry-rest.apps.example.com",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(
            "Model Registry URL must not carry credentials, a query or a fragment",
            fix=f"put the token in {MODEL_REGISTRY_TOKEN} and pass only scheme://host[:port]",
        )
    path = parts.path.rstrip("/")
    if API_ROOT in path:
        raise ConfigError(
            f"Model Registry URL {url!r} includes the API path {API_ROOT}",
            fix="pass only the base URL; the API version is detected",
        )
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return urlunsplit((parts.scheme, f"{host}:{port}", path, "", ""))


class _ApiVersionApiClient(ApiClient):
    """Generated REST client that sends every operation to ``/api/model_registry/<api_version>``."""

    def __init__(
        self, configuration: Any, api_version: str, timeout: float = DEFAULT_REGISTRY_TIMEOUT
    ) -> None:
        super().__init__(configuration)
        self._prefix_from = f"{API_ROOT}/{CLIENT_API_VERSION}/"
        self._prefix_to = f"{API_ROOT}/{api_version}/"
        self._timeout = timeout

    async def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> RESTResponse:
        """One request with a bounded timeout (the generated client waits 5 minutes) and bounded retries.

        The body is read inside the timeout, so a server that sends headers and then stalls is caught too.

        Raises:
            RegistryTimeoutError: No complete answer within the timeout on any attempt.
            aiohttp.ClientConnectionError: The connection failed on every attempt.
        """
        timeout = aiohttp.ClientTimeout(total=self._timeout, connect=min(self._timeout, 10.0))
        attempts = REGISTRY_ATTEMPTS if method.upper() in _REPLAYABLE else 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = await super().call_api(
                    method, url, header_params, body, post_params, _request_timeout or timeout
                )
                await response.read()
            except TimeoutError as err:
                if last:
                    raise RegistryTimeoutError(url.split("?", 1)[0], self._timeout, attempts) from err
            except aiohttp.ClientConnectionError:
                if last:
                    raise
            else:
                if last or response.status not in _RETRY_STATUSES:
                    return response
            delay = _BACKOFF_SECONDS[min(attempt, len(_BACKOFF_SECONDS)) - 1]
            log.debug("registry %s %s: attempt %d failed, retrying in %.1f s", method, url, attempt, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def param_serialize(self, method: Any, resource_path: str, *args: Any, **kwargs: Any) -> Any:
        if resource_path.startswith(self._prefix_from):
            resource_path = self._prefix_to + resource_path[len(self._prefix_from) :]
        return super().param_serialize(method, resource_path, *args, **kwargs)


@dataclass
class _ApiVersionAPIClient(ModelRegistryAPIClient):
    """The client's typed async layer (``model_registry.core``) bound to one REST API version."""

    api_version: str = CLIENT_API_VERSION
    timeout: float = DEFAULT_REGISTRY_TIMEOUT

    @asynccontextmanager
    async def get_client(self) -> AsyncIterator[ModelRegistryServiceApi]:
        api_client = _ApiVersionApiClient(self.config, self.api_version, self.timeout)
        try:
            yield ModelRegistryServiceApi(api_client)
        finally:
            await api_client.close()


class VersionedModelRegistry(ModelRegistry):
    """``ModelRegistry`` that talks to one REST API version (``v1`` or ``v1alpha3``).

    model-registry 0.3.18 has no public setting for the API path: every generated operation hard-codes
    ``/api/model_registry/v1`` and the constructor probes it at once. This subclass is the one place that
    bends that: the constructor stores its typed REST layer in the private attribute ``_api``; the property
    below wraps whatever it stores so requests go to ``api_version``. Everything else (token handling, TLS,
    the constructor's probe, all public methods) is the unmodified client. Pinned by
    ``tests/integration/test_registry_client.py`` against a v1alpha3-only server.
    """

    def __init__(
        self,
        server_address: str,
        *,
        api_version: str,
        timeout: float = DEFAULT_REGISTRY_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        if api_version not in SUPPORTED_API_VERSIONS:
            raise ValueError(f"api_version must be one of {SUPPORTED_API_VERSIONS}, not {api_version!r}")
        self.api_version = api_version
        self.timeout = timeout
        super().__init__(server_address, **kwargs)

    @property
    def _api(self) -> ModelRegistryAPIClient:
        return self.__dict__["_versioned_api"]

    @_api.setter
    def _api(self, api: ModelRegistryAPIClient) -> None:
        self.__dict__["_versioned_api"] = _ApiVersionAPIClient(
            config=api.config, api_version=self.api_version, timeout=self.timeout
        )


def connect_registry(settings: RegistrySettings) -> VersionedModelRegistry:
    """Connect to the registry at ``settings.url``, on ``/api/model_registry/v1`` or else ``v1alpha3``.

    The client's own constructor request is the probe: a 404 on one API version moves on to the next.

    Args:
        settings: URL, optional bearer token (MODEL_REGISTRY_TOKEN) and author recorded on new objects.

    Returns:
        A connected ``model_registry.ModelRegistry`` (a :class:`VersionedModelRegistry`, whose
        ``api_version`` says which API it uses).

    Raises:
        ConfigError: The URL is unset or malformed.
        RegistryError: The registry is unreachable, refuses the token, or serves no known API version.
    """
    url = normalize_registry_url(settings.url)
    token = settings.token.get_secret_value() if settings.token else None
    register_secret(token)
    not_found: list[str] = []
    for api_version in SUPPORTED_API_VERSIONS:
        try:
            registry = _construct(url, api_version, settings.author, token, settings.timeout)
        except mr_exceptions.NotFoundException:
            not_found.append(f"{API_ROOT}/{api_version}")
            continue
        log.info("connected to Model Registry %s (API %s)", url, api_version)
        return registry
    raise RegistryError(
        f"no Model Registry API at {url} (404 on {', '.join(not_found)})",
        fix=f"point {MODEL_REGISTRY_URL} / --registry-url at the registry's REST service (its -rest route)",
    )


def _construct(
    url: str, api_version: str, author: str, token: str | None, timeout: float
) -> VersionedModelRegistry:
    """One client construction (which makes one request), with its failures turned into RegistryError."""
    try:
        with warnings.catch_warnings():
            # Without MODEL_REGISTRY_TOKEN the client falls back to the pod's service-account token and warns
            # when there is none; a local registry over http needs none.
            warnings.filterwarnings("ignore", message="User access token is missing")
            # log_level ERROR: the client warns about any http port not ending in 80, which is noise here.
            return VersionedModelRegistry(
                url,
                api_version=api_version,
                timeout=timeout,
                author=author,
                user_token=token,
                log_level=logging.ERROR,
            )
    except mr_exceptions.NotFoundException:
        raise
    except (mr_exceptions.UnauthorizedException, mr_exceptions.ForbiddenException) as err:
        raise RegistryError(
            f"Model Registry at {url} refused the request (HTTP {err.status} {err.reason})",
            fix=f"set {MODEL_REGISTRY_TOKEN} to a token allowed to use this registry",
        ) from err
    except mr_exceptions.ApiException as err:
        raise RegistryError(f"Model Registry at {url} failed: {describe_api_error(err)}") from err
    except StoreError as err:
        raise RegistryError(
            f"Model Registry client for {url} could not start: {err}",
            fix=f"https needs a token: set {MODEL_REGISTRY_TOKEN}",
        ) from err
    except (TimeoutError, aiohttp.ClientError, OSError) as err:
        raise unreachable_error(err, f"connecting to {url}", url=url) from err


def describe_api_error(err: mr_exceptions.ApiException) -> str:
    """``HTTP <status> <reason>: <message>`` for a REST error (the server's JSON ``message`` if any)."""
    message = ""
    if err.body:
        try:
            body = json.loads(err.body)
            message = str(body.get("message", "")) if isinstance(body, dict) else ""
        except (TypeError, ValueError):
            message = str(err.body)[:200]
    return f"HTTP {err.status} {err.reason}" + (f": {message}" if message else "")


def core_api(registry: ModelRegistry) -> ModelRegistryAPIClient:
    """The client's typed async REST layer (``model_registry.core.ModelRegistryAPIClient``).

    ``ModelRegistry`` keeps it in ``_api`` and offers no lookup by id or artifact listing of its own; this is
    the only place outside :class:`VersionedModelRegistry` that reads that attribute. Run its coroutines with
    ``registry.async_runner(...)``.
    """
    api: ModelRegistryAPIClient = registry._api
    return api


@asynccontextmanager
async def rest_api(registry: ModelRegistry) -> AsyncIterator[ModelRegistryServiceApi]:
    """The generated REST API (``mr_openapi.ModelRegistryServiceApi``) with the client's URL and token."""
    async with core_api(registry).get_client() as client:
        yield client


def find_version(registry: ModelRegistry, model_name: str, version_name: str) -> ModelVersion | None:
    """The version ``version_name`` of registered model ``model_name``, or None if either does not exist."""
    model = registry.get_registered_model(model_name)
    if model is None or model.id is None:
        return None
    return registry.async_runner(core_api(registry).get_model_version_by_params(model.id, version_name))


def latest_model_version(
    registry: ModelRegistry, model_name: str | None = None, model_kind: str | None = None
) -> tuple[RegisteredModel, ModelVersion] | None:
    """The most recently updated version of ``model_name`` (of any model when None), or None if none.

    With ``model_kind``, only versions that record that kind count (versions registered before kinds
    were recorded are text-to-image).
    """
    best: tuple[int, RegisteredModel, ModelVersion] | None = None
    for model in registry.get_registered_models():
        if model_name is not None and model.name != model_name:
            continue
        for version in registry.get_model_versions(model.name):
            recorded = (version.custom_properties or {}).get("model_kind", "text-to-image")
            if model_kind is not None and recorded != model_kind:
                continue
            stamp = int(version.last_update_time_since_epoch or 0)
            if best is None or stamp > best[0]:
                best = (stamp, model, version)
    return None if best is None else (best[1], best[2])


def get_version(registry: ModelRegistry, version_id: str) -> ModelVersion:
    """The model version with id ``version_id``.

    Raises:
        ConfigError: ``version_id`` is not a registry id (a positive integer).
        RegistryError: No version has that id, or the registry failed.
    """
    _check_id(version_id, "model version id")
    version = registry_call(
        f"reading model version {version_id}",
        lambda: registry.async_runner(core_api(registry).get_model_version_by_id(version_id)),
    )
    if version is None:
        raise RegistryError(
            f"model version id {version_id} not found in the Model Registry",
            fix="pass the MODEL_VERSION_ID result of `modelpipe register`",
        )
    return version


def get_registered_model(registry: ModelRegistry, model_id: str) -> RegisteredModel:
    """The registered model with id ``model_id``.

    Raises:
        ConfigError: ``model_id`` is not a registry id (a positive integer).
        RegistryError: No registered model has that id, or the registry failed.
    """
    _check_id(model_id, "registered model id")
    model = registry_call(
        f"reading registered model {model_id}",
        lambda: registry.async_runner(core_api(registry).get_registered_model_by_id(model_id)),
    )
    if model is None:
        raise RegistryError(
            f"registered model id {model_id} not found in the Model Registry",
            fix="pass the REGISTERED_MODEL_ID result of `modelpipe register`",
        )
    return model


def returned_id(value: str | None, what: str) -> str:
    """The id of an object the registry returned; objects read back from a registry always carry one.

    Raises:
        RegistryError: It came back without an id (a registry bug, not bad input).
    """
    if not value:
        raise RegistryError(f"the registry returned {what} without an id", fix="check the registry server")
    return value


def _check_id(value: str, what: str) -> None:
    if not _ID.match(value or ""):
        raise ConfigError(f"{what} {value!r} is not a registry id", fix="ids are decimal numbers such as 7")


def version_model_artifacts(registry: ModelRegistry, version_id: str) -> list[ModelArtifact]:
    """Every model artifact of a version (all pages), oldest first."""
    options = ListOptions(limit=100)
    artifacts: list[ModelArtifact] = []
    seen: set[str | None] = set()
    while True:
        page = registry.async_runner(core_api(registry).get_model_artifacts(version_id, options))
        fresh = [artifact for artifact in page if artifact.id not in seen]
        artifacts.extend(fresh)
        seen.update(artifact.id for artifact in fresh)
        # An exhausted cursor comes back as "" (or some servers repeat the first page): stop on either.
        if not options.next_page_token or not fresh:
            return artifacts


def metadata_values(properties: Mapping[str, SupportedTypes]) -> dict[str, MetadataValue]:
    """Custom properties as REST ``MetadataValue``s, typed as the client types them (int sent as str)."""
    values: dict[str, MetadataValue] = {}
    for key, value in properties.items():
        raw: SupportedTypes
        if isinstance(value, bool):
            kind, raw = "bool", value
        elif isinstance(value, int):
            kind, raw = "int", str(value)
        elif isinstance(value, float):
            kind, raw = "double", value
        else:
            kind, raw = "string", str(value)
        values[key] = MetadataValue.from_dict(
            {f"{kind}_value": raw, "metadataType": f"Metadata{kind.capitalize()}Value"}
        )
    return values


# A number's string copy goes under "<key>_text": the dashboard shows only string properties.
TEXT_SUFFIX = "_text"


def numbers_with_text(numbers: Mapping[str, tuple[float, str]]) -> dict[str, SupportedTypes]:
    """``{key: (value, text)}`` as properties: the double under ``key``, its text under ``key_text``."""
    properties: dict[str, SupportedTypes] = {}
    for key, (value, text) in numbers.items():
        properties[key] = float(value)
        properties[key + TEXT_SUFFIX] = text
    return properties


def merged_properties(
    current: Mapping[str, SupportedTypes] | None,
    properties: Mapping[str, SupportedTypes],
    *,
    remove: Iterable[str] = (),
) -> dict[str, SupportedTypes]:
    """The customProperties map an update must send: ``current`` without ``remove``, then ``properties``.

    An update replaces the whole map, so whatever other steps wrote (publish's results, deploy's defaults,
    a user's labels) has to be sent back.
    """
    removed = set(remove)
    merged = {key: value for key, value in (current or {}).items() if key not in removed}
    merged.update(properties)
    return merged


def update_version_properties(
    registry: ModelRegistry,
    version_id: str,
    properties: Mapping[str, SupportedTypes],
    *,
    remove: Iterable[str] = (),
    rerun_hint: str = "re-run the step",
) -> None:
    """Merge ``properties`` into the version's custom properties and drop ``remove``, in one update.

    The current map is read first (:func:`merged_properties`); a key in both ``remove`` and ``properties``
    is set.

    Raises:
        RegistryError: The version does not exist, or the update was refused.
    """
    version = get_version(registry, version_id)
    version.custom_properties = merged_properties(version.custom_properties, properties, remove=remove)
    registry_call(
        f"updating model version {version_id}", lambda: registry.update(version), rerun_hint=rerun_hint
    )


def upsert_serving_environment(
    registry: ModelRegistry, name: str, *, description: str | None = None
) -> ServingEnvironment:
    """Find serving environment ``name`` (the namespace, as the in-cluster controller names it) or create it.

    Raises:
        RegistryError: The registry refused the request.
    """

    async def upsert() -> ServingEnvironment:
        async with rest_api(registry) as api:
            try:
                return await api.find_serving_environment(name=name)
            except mr_exceptions.NotFoundException:
                pass
            try:
                return await api.create_serving_environment(
                    ServingEnvironmentCreate(name=name, description=description)
                )
            except mr_exceptions.ConflictException:
                # Another deploy to the same namespace created it between our find and create.
                return await api.find_serving_environment(name=name)

    return _run_rest(registry, upsert(), f"serving environment {name!r}")


def upsert_inference_service(
    registry: ModelRegistry,
    *,
    serving_environment_id: str,
    name: str,
    registered_model_id: str,
    model_version_id: str,
    runtime: str,
    url: str | None = None,
    desired_state: InferenceServiceState = InferenceServiceState.DEPLOYED,
    properties: Mapping[str, SupportedTypes] | None = None,
) -> InferenceService:
    """Record a deployment as the in-cluster controller does: create or update InferenceService ``name``.

    Args:
        registry: A connected client.
        serving_environment_id: From :func:`upsert_serving_environment` (one per namespace).
        name: ``<isvc-name>/<isvc-uid>``, unique within the serving environment.
        registered_model_id: The registered model served.
        model_version_id: The version served.
        runtime: The ServingRuntime name.
        url: The endpoint URL, stored as the ``url`` string property.
        desired_state: DEPLOYED or UNDEPLOYED.
        properties: Extra custom properties (merged over the existing ones; ``url`` wins).

    Raises:
        RegistryError: The registry refused the request, or ``name`` already serves another registered model.
    """
    merged: dict[str, SupportedTypes] = dict(properties or {})
    if url is not None:
        merged["url"] = url

    async def upsert() -> InferenceService:
        async with rest_api(registry) as api:
            try:
                existing = await api.find_inference_service(
                    name=name, parent_resource_id=serving_environment_id
                )
            except mr_exceptions.NotFoundException:
                existing = None
            if existing is None:
                return await api.create_environment_inference_service(
                    serving_environment_id,
                    InferenceServiceCreate(
                        name=name,
                        servingEnvironmentId=serving_environment_id,
                        registeredModelId=registered_model_id,
                        modelVersionId=model_version_id,
                        runtime=runtime,
                        desiredState=desired_state,
                        customProperties=metadata_values(merged) or None,
                    ),
                )
            if existing.registered_model_id != registered_model_id:
                raise RegistryError(
                    f"inference service {name!r} (id {existing.id}) serves registered model "
                    f"{existing.registered_model_id}, not {registered_model_id}",
                    fix="use a new InferenceService name or the registered model it already serves",
                )
            custom = dict(existing.custom_properties or {})
            custom.update(metadata_values(merged))
            return await api.update_inference_service(
                returned_id(existing.id, f"inference service {name!r}"),
                InferenceServiceUpdate(
                    modelVersionId=model_version_id,
                    runtime=runtime,
                    desiredState=desired_state,
                    customProperties=custom or None,
                ),
            )

    return _run_rest(registry, upsert(), f"inference service {name!r}")


def _run_rest(registry: ModelRegistry, coro: Any, what: str) -> Any:
    return registry_call(f"writing {what}", lambda: registry.async_runner(coro))


def registry_call(what: str, call: Callable[[], T], *, rerun_hint: str = "re-run the step") -> T:
    """Run one client call, turning its REST, client and transport failures into RegistryError.

    Args:
        what: What the call does, for the message (e.g. ``"reading model version 7"``).
        call: The call, e.g. ``lambda: registry.update(version)``.
        rerun_hint: What the fix suggests after checking the registry.

    Raises:
        RegistryConflictError: The registry answered 409 (the name or externalId is taken).
        RegistryError: The registry refused the request or could not be reached.
    """
    try:
        return call()
    except mr_exceptions.ConflictException as err:
        raise RegistryConflictError(f"Model Registry refused {what}: {describe_api_error(err)}") from err
    except mr_exceptions.ApiException as err:
        raise RegistryError(f"Model Registry refused {what}: {describe_api_error(err)}") from err
    except StoreError as err:
        raise RegistryError(f"Model Registry refused {what}: {err}") from err
    except (TimeoutError, aiohttp.ClientError) as err:
        raise unreachable_error(err, what, rerun_hint=rerun_hint) from err


def unreachable_error(
    err: BaseException, what: str, *, url: str | None = None, rerun_hint: str = "re-run the step"
) -> RegistryError:
    """A RegistryError for a transport failure that names the endpoint, the budget spent and the fix.

    Never an empty reason: ``TimeoutError()`` and some aiohttp errors have no message of their own.
    """
    if isinstance(err, RegistryTimeoutError):
        return RegistryError(
            f"Model Registry did not answer while {what}: {err} (budget {request_budget(err.timeout):g} s)",
            fix=f"check that the registry at {url or err.url} is up and answering; on a slow registry raise "
            f"{MODEL_REGISTRY_TIMEOUT} (seconds per request, now {err.timeout:g}); then {rerun_hint}",
        )
    reason = str(err) or "no reason given"
    where = f" at {url}" if url else ""
    return RegistryError(
        f"Model Registry{where} unreachable while {what} ({type(err).__name__}: {reason})",
        fix=f"check {MODEL_REGISTRY_URL} / --registry-url and that the registry service is running; "
        f"then {rerun_hint}",
    )
