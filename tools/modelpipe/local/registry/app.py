"""The FastAPI app: Model Registry REST routes under each API prefix, bearer auth, the overview page."""

from __future__ import annotations

import hmac
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelpipe.local.registry import pages
from modelpipe.local.registry.errors import (
    ApiError,
    BadRequestError,
    NotFoundError,
    UnauthorizedError,
    status_text,
)
from modelpipe.local.registry.filters import compile_filter
from modelpipe.local.registry.paging import MAX_INT32, parse_page_request
from modelpipe.local.registry.schemas import (
    ARTIFACT_KINDS,
    INFERENCE_SERVICE,
    MODEL_ARTIFACT,
    MODEL_VERSION,
    REGISTERED_MODEL,
    SERVING_ENVIRONMENT,
    Kind,
    Variant,
    artifact_kind,
    parse_json_object,
    require_fields,
    validate_body,
)
from modelpipe.local.registry.store import RegistryStore

log = logging.getLogger(__name__)
API_VERSIONS = ("v1", "v1alpha3")
_DIGITS = re.compile(r"^[0-9]{1,10}$")
Handler = Callable[..., Awaitable[Any]]


def api_prefix(version: str) -> str:
    """The URL prefix the API is served under for ``version``."""
    return f"/api/model_registry/{version}"


def parse_id(value: str, what: str) -> int:
    """A path or query id as an int.

    Raises:
        BadRequestError: Not a decimal int32.
    """
    if not _DIGITS.match(value) or int(value) > MAX_INT32:
        raise BadRequestError(f"{what} must be a decimal int32 id, got {value!r}")
    return int(value)


def create_app(
    store: RegistryStore, *, token: str | None = None, api_versions: Sequence[str] = API_VERSIONS
) -> FastAPI:
    """The registry app over ``store``.

    Args:
        store: Where entities live.
        token: When set, every request must carry ``Authorization: Bearer <token>`` (else 401).
        api_versions: Which prefixes to serve (``v1`` for clients >= 0.3.15, ``v1alpha3`` for older ones).
    """
    app = FastAPI(title="modelpipe local Model Registry", docs_url=None, redoc_url=None, openapi_url=None)
    router = _api_router(store)
    for version in api_versions:
        app.include_router(router, prefix=api_prefix(version))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview() -> HTMLResponse:
        return HTMLResponse(await run_in_threadpool(pages.render_overview, store))

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if token is not None:
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                error = UnauthorizedError("missing or wrong bearer token in the Authorization header")
                return JSONResponse(error.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        body = {"code": status_text(err.status_code), "message": str(err.detail)}
        return JSONResponse(body, status_code=err.status_code, headers=getattr(err, "headers", None))

    @app.exception_handler(sqlite3.OperationalError)
    async def database_busy(_: Request, err: sqlite3.OperationalError) -> JSONResponse:
        # The 30 s busy timeout ran out (another writer held the lock) or the disk failed.
        log.error("registry database error: %s", err)
        body = {"code": status_text(503), "message": f"registry database unavailable: {err}"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse(BadRequestError(str(err.errors()[:1])).body(), status_code=400)

    return app


def _api_router(store: RegistryStore) -> APIRouter:
    router = APIRouter()
    collections: tuple[tuple[str, str, Kind], ...] = (
        ("registered_models", "registered_model", REGISTERED_MODEL),
        ("model_versions", "model_version", MODEL_VERSION),
        ("model_artifacts", "model_artifact", MODEL_ARTIFACT),
        ("serving_environments", "serving_environment", SERVING_ENVIRONMENT),
        ("inference_services", "inference_service", INFERENCE_SERVICE),
    )
    for plural, singular, kind in collections:
        router.add_api_route(f"/{plural}", _list_route(store, [kind]), methods=["GET"])
        router.add_api_route(f"/{plural}", _create_route(store, kind), methods=["POST"])
        router.add_api_route(f"/{plural}/{{entity_id}}", _get_route(store, kind), methods=["GET"])
        router.add_api_route(f"/{plural}/{{entity_id}}", _update_route(store, kind), methods=["PATCH"])
        router.add_api_route(f"/{singular}", _find_route(store, [kind]), methods=["GET"])
    all_artifacts = list(ARTIFACT_KINDS.values())
    router.add_api_route("/artifacts", _list_route(store, all_artifacts), methods=["GET"])
    router.add_api_route("/artifacts", _create_route(store, None), methods=["POST"])
    router.add_api_route("/artifacts/{entity_id}", _get_route(store, None), methods=["GET"])
    router.add_api_route("/artifacts/{entity_id}", _update_route(store, None), methods=["PATCH"])
    router.add_api_route("/artifact", _find_route(store, all_artifacts), methods=["GET"])
    nested = (
        ("/registered_models/{parent_id}/versions", REGISTERED_MODEL, [MODEL_VERSION]),
        ("/serving_environments/{parent_id}/inference_services", SERVING_ENVIRONMENT, [INFERENCE_SERVICE]),
        ("/model_versions/{parent_id}/artifacts", MODEL_VERSION, all_artifacts),
    )
    for path, parent, kinds in nested:
        router.add_api_route(path, _list_route(store, kinds, parent=parent), methods=["GET"])
    router.add_api_route(
        nested[0][0], _nested_create_route(store, MODEL_VERSION, REGISTERED_MODEL), methods=["POST"]
    )
    router.add_api_route(
        nested[1][0], _nested_create_route(store, INFERENCE_SERVICE, SERVING_ENVIRONMENT), methods=["POST"]
    )
    router.add_api_route(nested[2][0], _upsert_artifact_route(store), methods=["POST"])
    router.add_api_route(
        "/inference_services/{entity_id}/model", _serving_route(store, "model"), methods=["GET"]
    )
    router.add_api_route(
        "/inference_services/{entity_id}/version", _serving_route(store, "version"), methods=["GET"]
    )
    return router


def _list_route(store: RegistryStore, kinds: list[Kind], *, parent: Kind | None = None) -> Handler:
    async def list_entities(request: Request, **filters: Any) -> dict[str, Any]:
        params = request.query_params
        page = parse_page_request(params)
        selected = [artifact_kind(params)] if "artifactType" in params and kinds[0].is_artifact else kinds
        query = params.get("filterQuery", "").strip()
        condition = compile_filter(query, selected) if query else None
        return await run_in_threadpool(
            lambda: store.list_page(selected, page, condition=condition, **filters)
        )

    if parent is None:

        async def handler(request: Request) -> dict[str, Any]:
            return await list_entities(request)

        return handler

    async def nested_handler(request: Request, parent_id: str) -> dict[str, Any]:
        pid = parse_id(parent_id, f"{parent.label} id")
        await run_in_threadpool(store.get, parent, pid)
        params = request.query_params
        return await list_entities(
            request, parent_id=pid, name=params.get("name"), external_id=params.get("externalId")
        )

    return nested_handler


def _create_route(store: RegistryStore, kind: Kind | None) -> Handler:
    async def handler(request: Request) -> JSONResponse:
        data = parse_json_object(await request.body())
        target = kind or artifact_kind(data)
        values = validate_body(target, "create", data)
        require_fields(target, values)
        entity = await run_in_threadpool(store.create, target, values)
        return JSONResponse(entity, status_code=201)

    return handler


def _nested_create_route(store: RegistryStore, kind: Kind, parent: Kind) -> Handler:
    variant: Variant = "full" if kind is MODEL_VERSION else "create"
    parent_field = kind.parent_field
    if parent_field is None:
        raise ValueError(f"{kind.label} has no parent field; it cannot be created under {parent.label}")

    async def handler(request: Request, parent_id: str) -> JSONResponse:
        pid = parse_id(parent_id, f"{parent.label} id")
        data = parse_json_object(await request.body())
        values = validate_body(kind, variant, data)
        if values.get(parent_field) not in (None, str(pid)):
            raise BadRequestError(f"{parent_field} {values[parent_field]} differs from the path id {pid}")
        await run_in_threadpool(store.get, parent, pid)
        values[parent_field] = str(pid)
        for read_only in ("id", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"):
            values.pop(read_only, None)
        require_fields(kind, values)
        return JSONResponse(await run_in_threadpool(store.create, kind, values), status_code=201)

    return handler


def _upsert_artifact_route(store: RegistryStore) -> Handler:
    async def handler(request: Request, parent_id: str) -> JSONResponse:
        version_id = parse_id(parent_id, "ModelVersion id")
        data = parse_json_object(await request.body())
        kind = artifact_kind(data)
        values = validate_body(kind, "full", data)
        artifact_id = values.pop("id", None)
        for read_only in (
            "createTimeSinceEpoch",
            "lastUpdateTimeSinceEpoch",
            "experimentId",
            "experimentRunId",
        ):
            values.pop(read_only, None)
        await run_in_threadpool(store.get, MODEL_VERSION, version_id)
        existing = None if artifact_id is None else parse_id(artifact_id, "artifact id")
        entity, created = await run_in_threadpool(
            lambda: store.upsert_version_artifact(kind, values, version_id=version_id, artifact_id=existing)
        )
        return JSONResponse(entity, status_code=201 if created else 200)

    return handler


def _get_route(store: RegistryStore, kind: Kind | None) -> Handler:
    async def handler(entity_id: str) -> dict[str, Any]:
        eid = parse_id(entity_id, f"{kind.label if kind else 'Artifact'} id")
        return await run_in_threadpool(lambda: store.get(kind, eid))

    return handler


def _update_route(store: RegistryStore, kind: Kind | None) -> Handler:
    async def handler(request: Request, entity_id: str) -> dict[str, Any]:
        eid = parse_id(entity_id, f"{kind.label if kind else 'Artifact'} id")
        data = parse_json_object(await request.body())
        target = kind
        if target is None:
            existing = await run_in_threadpool(lambda: store.get(None, eid))
            target = ARTIFACT_KINDS[existing["artifactType"]]
        values = validate_body(target, "update", data)
        return await run_in_threadpool(store.update, target, eid, values)

    return handler


def _find_route(store: RegistryStore, kinds: list[Kind]) -> Handler:
    needs_parent = kinds[0] not in (REGISTERED_MODEL, SERVING_ENVIRONMENT)
    label = kinds[0].label if len(kinds) == 1 else "Artifact"

    async def handler(request: Request) -> dict[str, Any]:
        params = request.query_params
        name, external_id, parent = (
            params.get("name"),
            params.get("externalId"),
            params.get("parentResourceId"),
        )
        parent_id = None if parent is None else parse_id(parent, "parentResourceId")
        if needs_parent and external_id is None and (name is None or parent_id is None):
            raise BadRequestError(f"find {label}: give name and parentResourceId, or externalId")
        if not needs_parent and name is None and external_id is None:
            raise BadRequestError(f"find {label}: give name or externalId")
        return await run_in_threadpool(
            lambda: store.find(kinds, name=name, external_id=external_id, parent_id=parent_id)
        )

    return handler


def _serving_route(store: RegistryStore, what: str) -> Handler:
    async def handler(entity_id: str) -> dict[str, Any]:
        isvc = await run_in_threadpool(
            store.get, INFERENCE_SERVICE, parse_id(entity_id, "InferenceService id")
        )
        model_id = int(isvc["registeredModelId"])
        if what == "model":
            return await run_in_threadpool(store.get, REGISTERED_MODEL, model_id)
        if "modelVersionId" in isvc:
            return await run_in_threadpool(store.get, MODEL_VERSION, int(isvc["modelVersionId"]))
        latest = await run_in_threadpool(store.latest_version, model_id)
        if latest is None:
            raise NotFoundError(f"RegisteredModel {model_id} of InferenceService {entity_id} has no versions")
        return latest

    return handler
