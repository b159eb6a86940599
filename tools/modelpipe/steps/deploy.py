"""Deploy the model: a KServe InferenceService on a cluster, or a local server process; record it.

Text-to-image models are served by our diffusers runtime, text-generation models by vLLM (OpenAI API).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kubernetes.client import CustomObjectsApi
from model_registry import ModelRegistry

from modelpipe.config import RegistrySettings, S3Settings
from modelpipe.errors import ConfigError, RegistryError
from modelpipe.model_kinds import (
    DEFAULT_MODEL_KIND,
    MODEL_FORMATS,
    SERVING_RUNTIMES,
    TEXT_GENERATION,
    TEXT_TO_IMAGE,
    ModelKind,
)
from modelpipe.registry_client import (
    connect_registry,
    get_registered_model,
    get_version,
    returned_id,
    update_version_properties,
    upsert_inference_service,
    upsert_serving_environment,
)
from modelpipe.serving_defaults import (
    NO_SERVING_DEFAULTS,
    PROP_SERVED_DEFAULTS,
    ServingDefaults,
    from_properties,
    read_served_defaults,
)
from modelpipe.targets import kserve, kserve_access, local_process, local_vllm
from modelpipe.targets.kserve import IsvcSpec, Resources
from modelpipe.targets.serving_options import Placement, Scaling
from modelpipe.targets.vllm import VllmOptions

log = logging.getLogger(__name__)

Target = Literal["kserve", "local"]
# The serving environment local deployments are recorded under (a cluster uses the namespace).
LOCAL_SERVING_ENVIRONMENT = "local"
# Our ServingRuntime's name on a cluster; local deployments are recorded under it too.
SERVING_RUNTIME = SERVING_RUNTIMES[TEXT_TO_IMAGE]


@dataclass(frozen=True)
class KServeOptions:
    """Cluster-side settings for ``--target kserve``."""

    namespace: str | None = None
    # None: the model kind's runtime (SERVING_RUNTIMES).
    serving_runtime: str | None = None
    runtime_image: str | None = None
    storage_key: str | None = None
    service_account: str | None = None
    deployment_mode: str = "RawDeployment"
    registry_name: str | None = None
    resources: Resources = field(default_factory=Resources)
    scaling: Scaling = field(default_factory=Scaling)
    placement: Placement = field(default_factory=Placement)
    storage: str = "s3"
    expose: bool = False
    auth: bool = False
    canary_percent: int | None = None
    timeout: float = 1200.0
    poll_seconds: float = 5.0
    kubeconfig: Path | None = None
    kube_context: str | None = None
    cluster_local_url: bool = False


@dataclass(frozen=True)
class LocalOptions:
    """Settings for ``--target local``: where the runtime listens and keeps its pid file and logs."""

    state_dir: Path
    s3: S3Settings
    port: int = 8080
    timeout: float = 600.0
    runtime_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeployResult:
    """A served model.

    Attributes:
        endpoint_url: Base URL of the server (``{endpoint}/v1/models/{name}:predict``).
        served_model_name: The model name the server routes on.
        inference_service_id: Model Registry InferenceService id, when recorded.
        runtime_pid: Process id of the local runtime (local target only).
        isvc_uid: Kubernetes uid of the InferenceService (kserve target only).
        created: True when the InferenceService or process was created rather than updated/reused.
        traffic: Percent of traffic per predictor revision, when KServe reports it (canary rollouts).
        token_secret: Secret holding the access token, when the endpoint requires one (``--auth``).
    """

    endpoint_url: str
    served_model_name: str
    inference_service_id: str | None = None
    runtime_pid: int | None = None
    isvc_uid: str | None = None
    created: bool = True
    traffic: dict[str, int] = field(default_factory=dict)
    token_secret: str | None = None


@dataclass(frozen=True)
class _Recorder:
    """Records deployments of one registered model version in the Model Registry."""

    registry: ModelRegistry
    registered_model_id: str
    model_version_id: str

    def check_ids(self) -> ServingDefaults:
        """Fail before deploying when the ids do not exist or do not belong together.

        Returns:
            The serving defaults recorded on the version (by ``modelpipe register``).
        """
        get_registered_model(self.registry, self.registered_model_id)
        version = get_version(self.registry, self.model_version_id)
        if version.registered_model_id != self.registered_model_id:
            raise ConfigError(
                f"model version {self.model_version_id} belongs to registered model "
                f"{version.registered_model_id}, not {self.registered_model_id}",
                fix="pass REGISTERED_MODEL_ID and MODEL_VERSION_ID from the same `modelpipe register` run",
            )
        return from_properties(version.custom_properties or {})

    def record_served_defaults(self, endpoint_url: str, model_name: str) -> None:
        """Write what a live runtime this machine reaches serves requests without settings with."""
        try:
            served = read_served_defaults(endpoint_url, model_name)
        except ConfigError as err:
            # Informational only (the deployment stands): e.g. an endpoint behind auth.
            log.warning("serving defaults not recorded: %s", err)
            return
        self._record_defaults(model_name, served.describe())

    def record_passed_defaults(self, model_name: str, defaults: ServingDefaults) -> None:
        """Write the default flags deploy gave the runtime.

        On a cluster the endpoint is often unreachable from where deploy runs (an in-cluster URL, auth),
        and deploy knows what it passed; unset values are the model's own, which only the runtime knows.
        """
        self._record_defaults(model_name, defaults.describe())

    def _record_defaults(self, model_name: str, text: str) -> None:
        update_version_properties(
            self.registry,
            self.model_version_id,
            {PROP_SERVED_DEFAULTS: text},
            rerun_hint="re-run deploy; it updates the same InferenceService",
        )
        log.info("serving defaults of %s: %s", model_name, text)

    def record(self, *, environment: str, name: str, runtime: str, url: str) -> str:
        """Record the deployment as the in-cluster controller does; returns the InferenceService id."""
        serving_env = upsert_serving_environment(self.registry, environment)
        recorded = upsert_inference_service(
            self.registry,
            serving_environment_id=returned_id(serving_env.id, f"serving environment {environment!r}"),
            name=name,
            registered_model_id=self.registered_model_id,
            model_version_id=self.model_version_id,
            runtime=runtime,
            url=url,
        )
        if recorded.id is None:
            raise RegistryError(f"Model Registry returned no id for inference service {name!r}")
        log.info("recorded deployment %s in serving environment %s (id %s)", name, environment, recorded.id)
        return recorded.id


def _check_gpus(vllm: VllmOptions, resources: Resources) -> None:
    """Tensor parallelism shards one replica over GPUs of one pod: it cannot exceed the GPU limit."""
    ranks = vllm.tensor_parallel_size
    if ranks is not None and resources.gpus and ranks > resources.gpus:
        raise ConfigError(
            f"--tensor-parallel-size {ranks} needs {ranks} GPUs but --gpus is {resources.gpus}",
            fix=f"pass --gpus {ranks}",
        )


def _deploy_kserve(
    *,
    name: str,
    model_uri: str,
    options: KServeOptions,
    registered_model_id: str | None,
    model_version_id: str | None,
    recorder: _Recorder | None,
    model_kind: ModelKind,
    vllm: VllmOptions,
    serving_defaults: ServingDefaults,
) -> DeployResult:
    namespace = options.namespace or kserve.default_namespace(options.kubeconfig, options.kube_context)
    if not namespace:
        raise ConfigError("no namespace for the InferenceService", fix="pass --namespace")
    runtime = options.serving_runtime or SERVING_RUNTIMES[model_kind]
    _check_gpus(vllm, options.resources)
    runtime_image = options.runtime_image
    if model_kind == TEXT_GENERATION and runtime_image:
        # The pipeline passes the diffusers image it built; vLLM runs its ServingRuntime's pinned image.
        log.info("text-generation runs the %s image; --runtime-image %s not applied", runtime, runtime_image)
        runtime_image = None
    spec = IsvcSpec(
        name=name,
        namespace=namespace,
        model_uri=model_uri,
        serving_runtime=runtime,
        model_format=MODEL_FORMATS[model_kind],
        runtime_image=runtime_image,
        storage_key=options.storage_key,
        service_account=options.service_account,
        registered_model_id=registered_model_id,
        model_version_id=model_version_id,
        registry_name=options.registry_name,
        deployment_mode=options.deployment_mode,
        resources=options.resources,
        scaling=options.scaling,
        placement=options.placement,
        storage=options.storage,
        expose=options.expose,
        auth=options.auth,
        canary_percent=options.canary_percent,
        # vLLM's flags for a language model; the diffusers runtime's serving defaults otherwise.
        runtime_args=tuple(vllm.server_args())
        if model_kind == TEXT_GENERATION
        else serving_defaults.runtime_args(),
    )
    kserve.validate_spec(spec)
    with kserve.kube_client(options.kubeconfig, options.kube_context) as client:
        api = CustomObjectsApi(client)
        # Everything that can refuse is checked before the first write.
        kserve.check_canary_base(kserve.get_inference_service(api, name, namespace), spec)
        if spec.storage == "pvc":
            kserve.check_model_claim(client, namespace, model_uri.removeprefix("pvc://").split("/", 1)[0])
        applied, created = kserve.apply_inference_service(api, kserve.build_inference_service(spec))
        if spec.auth:
            kserve_access.apply_access_objects(client, kserve_access.build_access_objects(applied))
        isvc = kserve.wait_until_ready(
            api,
            name,
            namespace,
            timeout=options.timeout,
            generation=applied["metadata"].get("generation"),
            poll_seconds=options.poll_seconds,
        )
        # An exposed endpoint is recorded by its external URL: that is what it was exposed for.
        url = kserve.endpoint_url(isvc, cluster_local=options.cluster_local_url and not spec.expose)
        uid = str(isvc["metadata"]["uid"])
        log.info("InferenceService %s/%s Ready at %s", namespace, name, url)
        inference_service_id = None
        if recorder is not None:
            inference_service_id = recorder.record(
                environment=namespace, name=f"{name}/{uid}", runtime=runtime, url=url
            )
            kserve.label_inference_service(
                api, name, namespace, {kserve.LABEL_INFERENCE_SERVICE_ID: inference_service_id}
            )
            if model_kind != TEXT_GENERATION:  # the diffusers runtime's step/size/guidance defaults
                recorder.record_passed_defaults(name, serving_defaults)
    return DeployResult(
        url,
        name,
        inference_service_id,
        isvc_uid=uid,
        created=created,
        traffic=kserve.traffic(isvc),
        token_secret=kserve_access.token_secret_name(name) if spec.auth else None,
    )


def _deploy_local(
    *,
    name: str,
    model_uri: str,
    options: LocalOptions,
    recorder: _Recorder | None,
    model_kind: ModelKind,
    vllm: VllmOptions,
    serving_defaults: ServingDefaults,
) -> DeployResult:
    if model_kind == TEXT_GENERATION:
        runtime = local_vllm.start_local_vllm(
            model_name=name,
            model_uri=model_uri,
            s3=options.s3,
            state_dir=options.state_dir,
            port=options.port,
            timeout=options.timeout,
            options=vllm,
            extra_args=options.runtime_args,
        )
    else:
        runtime = local_process.start_local_runtime(
            model_name=name,
            model_uri=model_uri,
            s3=options.s3,
            state_dir=options.state_dir,
            port=options.port,
            timeout=options.timeout,
            extra_args=(*options.runtime_args, *serving_defaults.runtime_args()),
        )
    inference_service_id = None
    if recorder is not None:
        inference_service_id = recorder.record(
            environment=LOCAL_SERVING_ENVIRONMENT,
            name=f"{name}/local",
            runtime=SERVING_RUNTIMES[model_kind],
            url=runtime.endpoint_url,
        )
        if model_kind != TEXT_GENERATION:  # the diffusers runtime's step/size/guidance defaults
            recorder.record_served_defaults(runtime.endpoint_url, name)
    return DeployResult(
        runtime.endpoint_url, name, inference_service_id, runtime_pid=runtime.pid, created=runtime.started
    )


def deploy_model(
    *,
    target: Target,
    name: str,
    model_uri: str,
    registered_model_id: str | None = None,
    model_version_id: str | None = None,
    registry_settings: RegistrySettings | None = None,
    kserve: KServeOptions | None = None,
    local: LocalOptions | None = None,
    model_kind: ModelKind = DEFAULT_MODEL_KIND,
    vllm: VllmOptions | None = None,
) -> DeployResult:
    """Serve ``model_uri`` as ``name`` and, given a registry URL and ids, record the deployment there.

    Args:
        target: ``kserve`` (InferenceService on a cluster) or ``local`` (runtime process on this machine).
        name: InferenceService name, also the served model name.
        model_uri: ``s3://bucket/prefix`` of the uploaded model (``pvc://CLAIM/PATH`` with storage pvc).
        registered_model_id: Registry id of the model (labels the ISVC; recorded with the deployment).
        model_version_id: Registry id of the version served.
        registry_settings: Where the Model Registry is; recording happens only when its URL is set.
        kserve: Options for the kserve target.
        local: Options for the local target.
        model_kind: ``text-to-image`` (diffusers runtime) or ``text-generation`` (vLLM, OpenAI API at
            ``{endpoint}/v1/...``).
        vllm: vLLM settings (text-generation only): ISVC args on KServe, server flags locally.

    Returns:
        Endpoint URL, served model name, registry InferenceService id and (local) the runtime pid.

    Raises:
        ConfigError: Bad flags, ids that do not belong together, missing namespace or kubeconfig, vLLM
            options for a text-to-image model, more tensor-parallel ranks than GPUs.
        DeployError: The InferenceService or runtime did not become ready (conditions / log lines shown).
        RegistryError: The registry refused or could not be reached.
    """
    if target not in ("kserve", "local"):
        raise ConfigError(f"--target {target!r} unknown", fix="use kserve or local")
    if (registered_model_id is None) != (model_version_id is None):
        raise ConfigError(
            "--registered-model-id and --model-version-id go together", fix="pass both or neither"
        )
    for options in (kserve, local):
        if options is not None and not 0 < options.timeout < float("inf"):
            raise ConfigError(f"--timeout {options.timeout} must be positive", fix="pass seconds, e.g. 900")
    if target == "local" and local is None:
        raise ConfigError("--target local needs --state-dir", fix="pass --state-dir DIR (pid file and log)")
    vllm = vllm or VllmOptions()
    vllm.validate()
    if model_kind != TEXT_GENERATION and vllm.server_args():
        raise ConfigError(
            f"vLLM options ({' '.join(vllm.server_args())}) apply to text-generation models only",
            fix="drop them, or pass --model-kind text-generation",
        )
    recorder = None
    serving_defaults = NO_SERVING_DEFAULTS
    if registered_model_id and model_version_id:
        if registry_settings is not None and registry_settings.url:
            recorder = _Recorder(connect_registry(registry_settings), registered_model_id, model_version_id)
            serving_defaults = recorder.check_ids()
        else:
            log.info("no Model Registry URL: the deployment is not recorded in the registry")
    if target == "kserve":
        return _deploy_kserve(
            name=name,
            model_uri=model_uri,
            options=kserve or KServeOptions(),
            registered_model_id=registered_model_id,
            model_version_id=model_version_id,
            recorder=recorder,
            model_kind=model_kind,
            vllm=vllm,
            serving_defaults=serving_defaults,
        )
    if target == "local" and local is not None:
        return _deploy_local(
            name=name,
            model_uri=model_uri,
            options=local,
            recorder=recorder,
            model_kind=model_kind,
            vllm=vllm,
            serving_defaults=serving_defaults,
        )
    raise ConfigError(f"--target {target!r} unknown", fix="use kserve or local")
