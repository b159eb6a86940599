"""Local Kubeflow Model Registry REST server backed by SQLite (stand-in for the Go server in local runs)."""

from __future__ import annotations

from modelpipe.local.registry.app import API_VERSIONS, api_prefix, create_app
from modelpipe.local.registry.server import serve_registry
from modelpipe.local.registry.store import RegistryStore

__all__ = ["API_VERSIONS", "RegistryStore", "api_prefix", "create_app", "serve_registry"]
