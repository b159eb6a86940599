"""Flag parsing, model-source checks and the data-connection env mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from diffusers_runtime.__main__ import configure_latency_logging, parse_args
from diffusers_runtime.errors import ModelLoadError
from diffusers_runtime.storage import check_model_dir, data_connection_env, is_remote


def test_defaults_and_storage_uri_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_URI", "s3://models/sd15")
    args = parse_args(["--model_name", "sd15"])
    assert args.model_dir == "s3://models/sd15"
    assert (args.max_batch_size, args.max_queue, args.device, args.dtype) == (
        4,
        64,
        "auto",
        "auto",
    )
    assert args.batch_invariant is True and args.compile is False and args.cpu_offload == "none"
    # Hostile clients: client-facing model management is off, cost is bounded, no deadline by default.
    assert args.enable_repository_routes is False and args.enable_explain_route is False
    assert args.max_server_pixel_steps >= args.max_request_pixel_steps == 4 * 1024 * 1024 * 50
    assert args.request_timeout_s == 0


def test_model_dir_flag_wins_over_storage_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_URI", "s3://models/sd15")
    assert parse_args(["--model_dir", "/mnt/models"]).model_dir == "/mnt/models"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--model_dir", "/m", "--workers", "2"],
        ["--model_dir", "/m", "--max_batch_size", "0"],
        ["--model_dir", "/m", "--max_queue", "2", "--max_images_per_request", "4"],
        ["--model_dir", "/m", "--max_batch", "2"],
        ["--model_dir", "/m", "--batch_invariant", "maybe"],
        ["--model_dir", "/m", "--dtype", "int8"],
        ["--model_dir", "/m", "--max_request_pixel_steps", "100"],
        ["--model_dir", "/m", "--max_request_pixel_steps", "10000000", "--max_server_pixel_steps", "9999999"],
        ["--model_dir", "/m", "--request_timeout_s", "-1"],
        ["--model_dir", "/m", "--request_timeout_s", "inf"],
        ["--model_dir", "/m", "--enable_repository_routes", "maybe"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_URI", raising=False)
    with pytest.raises(SystemExit) as caught:
        parse_args(argv)
    assert caught.value.code == 2


def test_data_connection_endpoint_becomes_aws_endpoint_url() -> None:
    assert data_connection_env({"AWS_S3_ENDPOINT": "http://minio:9000"}) == {
        "AWS_ENDPOINT_URL": "http://minio:9000"
    }
    assert data_connection_env({"AWS_S3_ENDPOINT": "minio.example.com"}) == {
        "AWS_ENDPOINT_URL": "https://minio.example.com"
    }
    assert data_connection_env({"AWS_S3_ENDPOINT": "http://a", "AWS_ENDPOINT_URL": "http://b"}) == {}
    assert data_connection_env({}) == {}


def test_remote_and_local_sources() -> None:
    assert is_remote("s3://bucket/model") and is_remote("hf://org/repo")
    assert not is_remote("/mnt/models") and not is_remote("file:///mnt/models")


def test_check_model_dir_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="is not a folder"):
        check_model_dir(tmp_path / "missing", "x")
    with pytest.raises(ModelLoadError, match=r"model_index\.json does not exist"):
        check_model_dir(tmp_path, "x")
    (tmp_path / "model_index.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        check_model_dir(tmp_path, "x")
    (tmp_path / "model_index.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(ModelLoadError, match="_class_name"):
        check_model_dir(tmp_path, "x")
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    assert check_model_dir(tmp_path, "x") == tmp_path


@pytest.mark.parametrize(
    ("configured", "enabled", "logged"),
    [("INFO", True, True), ("INFO", False, False), ("WARNING", True, False)],
)
def test_latency_logging_flag_covers_kserve_timing_middleware(
    configured: str, enabled: bool, logged: bool
) -> None:
    import logging

    from kserve.protocol.rest.server import PrintTimings

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    trace = logging.getLogger("kserve.trace")
    level = trace.level
    trace.addHandler(handler)
    try:
        trace.setLevel(configured)  # what kserve's logging config does with KSERVE_LOGLEVEL
        configure_latency_logging(enabled)
        PrintTimings().timing("kserve.io.v1.models.m:predict", 0.02, ["time:wall"])
    finally:
        trace.removeHandler(handler)
        trace.setLevel(level)
    assert bool(lines) is logged
