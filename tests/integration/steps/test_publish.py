"""publish_results against SeaweedFS and the local registry: S3 objects, properties via the client."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from model_registry import ModelRegistry
from modelpipe.benchmark_schema import BenchmarkResults
from modelpipe.config import RegistrySettings, S3Settings
from modelpipe.errors import QualityGateError, RegistryError
from modelpipe.manifest import build_manifest, hash_files, write_manifest
from modelpipe.steps.publish import (
    NUMBER_KEYS,
    TEXT_SUFFIX,
    PublishResult,
    publish_results,
)
from modelpipe.steps.register import register_model
from PIL import Image
from pydantic import SecretStr

from tests.unit.steps.test_benchmark_schema import sample_results_dict

pytestmark = pytest.mark.integration

MODEL_URI = "s3://models/tiny-sd/0123abcd"
REPORT_PREFIX = "tiny-sd/reports/0123abcd/20261122T080000Z"


def official_client(server) -> ModelRegistry:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="User access token is missing")
        return ModelRegistry(server.url, author="checker", is_secure=False)


@pytest.fixture
def version_id(registry_server) -> str:
    client = official_client(registry_server)
    client.register_model(
        "tiny-sd",
        MODEL_URI,
        model_format_name="diffusers",
        model_format_version="1",
        version="1.0",
        metadata={"source_revision": "0123abcd", "text-to-image": ""},
    )
    return str(client.get_model_version("tiny-sd", "1.0").id)


def write_benchmark_output(folder: Path, **changes: Any) -> Path:
    data = sample_results_dict()
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[leaf] = value
    results = BenchmarkResults.model_validate(data)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(results.images):
        Image.new("RGB", (64, 64), (index * 60, 120, 200)).save(folder / "images" / name)
    results.save(folder / "results.json")
    return folder


def publish(registry_server, s3_server, results_dir: Path, version_id: str, **gates: Any) -> PublishResult:
    return publish_results(
        registry=RegistrySettings(url=registry_server.url, token=None, author="tests"),
        s3=S3Settings.from_env(s3_server.env),
        results_dir=results_dir,
        model_version_id=version_id,
        model_uri=MODEL_URI,
        pipeline_run="testing-run-1",
        **gates,
    )


def objects(s3_server, prefix: str) -> dict[str, bytes]:
    client = s3_server.client()
    listed = client.list_objects_v2(Bucket="models", Prefix=prefix + "/").get("Contents", [])
    return {
        item["Key"][len(prefix) + 1 :]: client.get_object(Bucket="models", Key=item["Key"])["Body"].read()
        for item in listed
    }


def test_publish_uploads_report_next_to_model_and_writes_doubles_strings_labels(
    registry_server, s3_server, version_id: str, tmp_path: Path
) -> None:
    result = publish(
        registry_server,
        s3_server,
        write_benchmark_output(tmp_path / "bench"),
        version_id,
    )
    assert result.report_uri == f"s3://models/{REPORT_PREFIX}/index.html"
    assert result.validated is False

    stored = objects(s3_server, REPORT_PREFIX)
    assert {
        "index.html",
        "results.json",
        "images/000.png",
        "images/001.png",
        "images/002.png",
    } <= set(stored)
    assert json.loads(stored["results.json"])["clip_score"]["mean"] == 21.5
    assert b"<html" in stored["index.html"].lower()

    props = official_client(registry_server).get_model_version("tiny-sd", "1.0").custom_properties
    for key in NUMBER_KEYS:
        assert isinstance(props[key], float) and isinstance(props[key + TEXT_SUFFIX], str), key
    assert props["benchmark_clip_score"] == 21.5 and props["benchmark_clip_score_text"] == "21.50"
    assert props["benchmark_report_uri"] == result.report_uri
    assert props["benchmark_clip_model"] == "tiny-clip"
    assert props["benchmark_prompt_set_sha256"] == "a" * 64
    assert props["benchmarked"] == ""
    assert "validated" not in props
    # What register wrote stays.
    assert props["source_revision"] == "0123abcd" and props["text-to-image"] == ""


def test_passing_gates_add_the_validated_label(
    registry_server, s3_server, version_id: str, tmp_path: Path
) -> None:
    bench = write_benchmark_output(tmp_path / "bench")
    result = publish(
        registry_server,
        s3_server,
        bench,
        version_id,
        min_clip_score=20.0,
        max_p95_seconds=1.0,
    )
    assert result.validated is True
    props = official_client(registry_server).get_model_version("tiny-sd", "1.0").custom_properties
    assert props["validated"] == "" and "clip_score measured 21.5" in props["benchmark_gates"]


def test_failed_gate_still_publishes_numbers_and_drops_validated(
    registry_server, s3_server, version_id: str, tmp_path: Path
) -> None:
    publish(
        registry_server,
        s3_server,
        write_benchmark_output(tmp_path / "good"),
        version_id,
        min_clip_score=20.0,
    )
    slower = write_benchmark_output(
        tmp_path / "slow",
        **{"summary.p95_seconds": 4.2, "created": "2026-11-22T09:00:00Z"},
    )
    with pytest.raises(QualityGateError, match=r"p95_seconds measured 4.2 vs required <= 3"):
        publish(registry_server, s3_server, slower, version_id, max_p95_seconds=3.0)
    props = official_client(registry_server).get_model_version("tiny-sd", "1.0").custom_properties
    assert props["benchmark_p95_seconds"] == 4.2 and props["benchmark_p95_seconds_text"] == "4.200"
    assert "validated" not in props
    assert "index.html" in objects(s3_server, "tiny-sd/reports/0123abcd/20261122T090000Z")


def test_republishing_the_same_results_overwrites_the_same_objects(
    registry_server, s3_server, version_id: str, tmp_path: Path
) -> None:
    bench = write_benchmark_output(tmp_path / "bench")
    first = publish(registry_server, s3_server, bench, version_id)
    before = objects(s3_server, "tiny-sd/reports")
    second = publish(registry_server, s3_server, bench, version_id)
    assert second.report_uri == first.report_uri
    assert set(objects(s3_server, "tiny-sd/reports")) == set(before)


def test_secrets_never_reach_the_uploaded_report(
    registry_server,
    s3_server,
    version_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = s3_server.secret_access_key
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    bench = write_benchmark_output(
        tmp_path / "bench", **{"latency.1.error_samples": [f"HTTP 403: key {secret}"]}
    )
    publish(registry_server, s3_server, bench, version_id)
    for name, body in objects(s3_server, REPORT_PREFIX).items():
        assert secret.encode() not in body, name


def test_unknown_version_fails_before_uploading(registry_server, s3_server, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="model version id 999 not found"):
        publish(
            registry_server,
            s3_server,
            write_benchmark_output(tmp_path / "bench"),
            "999",
        )
    assert objects(s3_server, "tiny-sd/reports") == {}


def test_publish_works_on_a_token_protected_v1alpha3_registry(
    registry_server_factory, s3_server, tmp_path: Path
) -> None:
    token = "registry-token-publish-77"
    server = registry_server_factory(api_versions=("v1alpha3",), token=token)
    settings = RegistrySettings(url=server.url, token=SecretStr(token), author="tests")
    manifest_dir = tmp_path / "model"
    manifest_dir.mkdir()
    (manifest_dir / "model_index.json").write_text("{}")
    manifest = write_manifest(
        manifest_dir,
        build_manifest(
            source="hf://org/tiny-sd",
            revision="0123abcd",
            files=hash_files(manifest_dir, ["model_index.json"]),
        ),
    )
    registered = register_model(
        registry=settings,
        model_name="tiny-sd",
        version_name="1.0",
        model_uri=MODEL_URI,
        manifest=manifest,
    )
    result = publish_results(
        registry=settings,
        s3=S3Settings.from_env(s3_server.env),
        results_dir=write_benchmark_output(tmp_path / "bench"),
        model_version_id=registered.model_version_id,
        model_uri=MODEL_URI,
        min_clip_score=10.0,
    )
    assert result.validated is True
    assert "index.html" in objects(s3_server, REPORT_PREFIX)
