"""deploy.sh's generated files, built as data: kustomization, storage-config entry, Secret name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from modelpipe.install_manifests import main, storage_config_entry

from tests.support.tools import REPO_ROOT


def test_kustomization_pins_digests_and_quotes_any_value(tmp_path: Path) -> None:
    odd = 'https://r.example.com/a "quoted" #1: x'
    code = main([
        "kustomization", str(tmp_path), "--root", str(REPO_ROOT), "--overlay", "kubernetes",
        "--namespace", "team", "--tools-image", "quay.io/acme/tools:0.2.0",
        "--tools-digest", "sha256:" + "a" * 64,
        "--runtime-repo", "quay.io/acme/rt", "--config", f"MODEL_REGISTRY_URL={odd}",
    ])  # fmt: skip
    assert code == 0
    doc = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert doc["resources"] == ["../../gitops/overlays/kubernetes"] and doc["namespace"] == "team"
    tools, runtime = doc["images"]
    assert tools == {"name": "quay.io/modelpipe/modelpipe-tools", "newName": "quay.io/acme/tools",
                     "digest": "sha256:" + "a" * 64}  # fmt: skip
    assert runtime["newTag"] == "0.1.0" and runtime["newName"] == "quay.io/acme/rt"
    config = yaml.safe_load(doc["patches"][1]["patch"])
    assert config["data"]["MODEL_REGISTRY_URL"] == odd
    assert yaml.safe_load((tmp_path / "monitoring" / "kustomization.yaml").read_text())["namespace"] == "team"


def test_storage_config_entry_reads_the_data_connection_from_the_env() -> None:
    entry = json.loads(storage_config_entry({"AWS_SECRET_ACCESS_KEY": 's"e', "AWS_S3_BUCKET": "b"}))
    assert entry["type"] == "s3" and entry["secret_access_key"] == 's"e' and entry["bucket"] == "b"


def test_data_connection_secret_uses_the_one_naming_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data-connection-secret", "models"]) == 0
    assert capsys.readouterr().out == "aws-connection-models\n"
    assert main(["data-connection-secret", "Bad_Name"]) == 1


def test_an_empty_setting_leaves_its_config_map_key_out(tmp_path: Path) -> None:
    # HF_ENDPOINT="" would reach the steps as the Hub URL; absent, huggingface_hub uses huggingface.co.
    code = main([
        "kustomization", str(tmp_path), "--root", str(REPO_ROOT), "--overlay", "kubernetes",
        "--namespace", "team", "--tools-image", "quay.io/acme/tools:0.2.0",
        "--runtime-repo", "quay.io/acme/rt",
        "--config", "HF_ENDPOINT=", "--config", "MODEL_REGISTRY_AUTHOR=ci",
    ])  # fmt: skip
    assert code == 0
    doc = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert yaml.safe_load(doc["patches"][1]["patch"])["data"] == {"MODEL_REGISTRY_AUTHOR": "ci"}
