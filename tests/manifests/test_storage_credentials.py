"""Both overlays give KServe's storage initializer the credentials our storage.key names."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.manifests import checks
from tests.manifests.storage_credentials import (
    check_storage_credentials,
    dry_run_schema_problems,
    isvc_storage_key,
)
from tests.manifests.test_bundle import SPECS, edit
from tests.manifests.test_scripts import (  # noqa: F401 - fake_cluster is a fixture
    SECRET_VALUES,
    assert_no_secret_value,
    env_file,
    fake_cluster,
    recorded,
    run,
)
from tests.support.tools import REPO_ROOT, require_tool


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    require_tool("kubectl")


@pytest.mark.parametrize("overlay", ["kubernetes", "openshift"])
def test_overlay_creates_what_the_storage_key_names(overlay: str) -> None:
    assert check_storage_credentials(REPO_ROOT, overlay) == []


@pytest.mark.parametrize("overlay", ["kubernetes", "openshift"])
def test_deploy_dry_run_output_validates(overlay: str) -> None:
    assert dry_run_schema_problems(REPO_ROOT, overlay, SPECS) == []


def test_dry_run_validation_catches_a_misspelt_secret_field(tmp_path: Path) -> None:
    root = checks.copy_tree(REPO_ROOT, tmp_path / "repo")
    edit("gitops/overlays/kubernetes/storage-config.yaml", "type: Opaque", "typ: Opaque")(root)
    problems = dry_run_schema_problems(root, "kubernetes", SPECS)
    assert any("storage-config" in p and "typ" in p for p in problems), problems


def test_the_storage_key_is_the_data_connection_secret() -> None:
    assert isvc_storage_key(REPO_ROOT) == "aws-connection-modelpipe"


@pytest.mark.parametrize(
    ("overlay", "mutate", "expected"),
    [
        pytest.param(
            "kubernetes",
            edit(
                "deploy.sh",
                '"$STORAGE_CONFIG_SECRET" generic "$DATA_CONNECTION_SECRET=',
                '"$STORAGE_CONFIG_SECRET" generic "modelpipe=',
            ),
            "has no entry aws-connection-modelpipe",
            id="kubernetes-entry-under-another-key",
        ),
        pytest.param(
            "kubernetes",
            edit("deploy.sh", "STORAGE_CONFIG_SECRET=storage-config", "STORAGE_CONFIG_SECRET=kserve-storage"),
            "Secret storage-config has no entry aws-connection-modelpipe",
            id="kubernetes-secret-misnamed",
        ),
        pytest.param(
            "openshift",
            edit("gitops/base/data-connection.yaml", '    opendatahub.io/managed: "true"\n', ""),
            "lacks label opendatahub.io/managed=true",
            id="openshift-connection-not-managed",
        ),
        pytest.param(
            "openshift",
            edit(
                "deploy.sh", 'if [ "$overlay" = kubernetes ]; then\n    storage', "if true; then\n    storage"
            ),
            "which OpenShift AI owns",
            id="openshift-storage-config-overwritten",
        ),
        pytest.param(
            "kubernetes",
            edit("tasks/deploy-model.yaml", "default: modelpipe\n", "default: other\n"),
            "storage.key aws-connection-other names no data connection Secret",
            id="task-default-names-another-connection",
        ),
    ],
)
def test_check_reports_broken_copy(tmp_path: Path, overlay: str, mutate: object, expected: str) -> None:
    root = checks.copy_tree(REPO_ROOT, tmp_path / "repo")
    mutate(root)  # type: ignore[operator]
    problems = check_storage_credentials(root, overlay)
    assert any(expected in p for p in problems), problems


def test_kubernetes_storage_config_entry_holds_the_connection_as_json(
    tmp_path: Path,
    fake_cluster: dict[str, str],  # noqa: F811 - the fixture
) -> None:
    proc = run(
        "deploy.sh", "--overlay", "kubernetes", "--no-build", "--env-file", str(env_file(tmp_path)),
        env=fake_cluster,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    assert_no_secret_value(proc.stdout, proc.stderr)
    manifests, secrets = recorded(fake_cluster, "apply")
    layout = next(d for d in manifests if d["metadata"]["name"] == "storage-config")
    assert "data" not in layout  # re-applying the layout never drops entries
    config = next(d for d in secrets if d["metadata"]["name"] == "storage-config")
    assert set(config["data"]) == {"aws-connection-modelpipe"}
    entry = json.loads(base64.b64decode(config["data"]["aws-connection-modelpipe"]))
    assert entry == {
        "type": "s3",
        "access_key_id": SECRET_VALUES["AWS_ACCESS_KEY_ID"],
        # quotes, a dollar sign: JSON-escaped, not shell-expanded
        "secret_access_key": SECRET_VALUES["AWS_SECRET_ACCESS_KEY"],
        "endpoint_url": "http://minio:9000",
        "region": "us-east-1",
        "bucket": "models",
    }


def test_openshift_leaves_storage_config_to_the_platform(
    tmp_path: Path,
    fake_cluster: dict[str, str],  # noqa: F811 - the fixture
) -> None:
    proc = run(
        "deploy.sh", "--overlay", "openshift", "--no-build", "--env-file", str(env_file(tmp_path)),
        env=fake_cluster,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    applied = [d["metadata"]["name"] for docs in recorded(fake_cluster, "apply") for d in docs]
    assert "storage-config" not in applied
