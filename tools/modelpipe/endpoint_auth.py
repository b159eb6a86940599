"""Bearer-token access to an endpoint deployed with ``auth=true``: the header, and what a 401/403 means."""

from __future__ import annotations

from pydantic import SecretStr

from modelpipe.config import ENDPOINT_TOKEN
from modelpipe.redaction import register_secret

# Statuses an authenticating proxy in front of the runtime answers with (OpenShift AI: kube-rbac-proxy or
# Authorino): no or an unknown token (401), a token without `get` on the InferenceService (403).
AUTH_STATUSES = frozenset({401, 403})


def token_value(token: SecretStr) -> str:
    """The token's value, registered with the redaction helper first: every use of it goes through here."""
    value = token.get_secret_value()
    register_secret(value)
    return value


def auth_headers(token: SecretStr | None) -> dict[str, str]:
    """``Authorization: Bearer TOKEN`` when there is a token, else no header."""
    return {} if token is None else {"Authorization": f"Bearer {token_value(token)}"}


def auth_failure(status: int, where: str, *, token_sent: bool) -> tuple[str, str]:
    """Message and fix for a 401/403 from ``where`` (a public URL: no token in it)."""
    reason = "Unauthorized" if status == 401 else "Forbidden"
    if token_sent:
        return (
            f"{where} refused the bearer token from {ENDPOINT_TOKEN} (HTTP {status} {reason})",
            "use the token of Secret NAME-sa-token for this InferenceService (deploy with auth=true "
            "creates it); a token from another ServiceAccount needs `get` on the InferenceService",
        )
    return (
        f"{where} requires a bearer token (HTTP {status} {reason}); none was sent",
        f"set {ENDPOINT_TOKEN} to the token in Secret NAME-sa-token (the benchmark-model and "
        f"evaluate-model Tasks map it in), or deploy with auth=false",
    )
