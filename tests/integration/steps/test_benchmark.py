"""benchmark_model against a live V1 endpoint: the real runtime (runtime_server), and a loopback fake for
failure behaviour the real runtime cannot be made to show on demand."""

from __future__ import annotations

import base64
import io
import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelpipe.benchmark_schema import BenchmarkResults
from modelpipe.errors import BenchmarkError
from modelpipe.steps.benchmark import benchmark_model
from PIL import Image

pytestmark = pytest.mark.integration

SMALL = {
    "concurrency": (1, 2),
    "requests": 4,
    "warmup": 1,
    "steps": 2,
    "width": 64,
    "height": 64,
    # Every setting explicit: the fake V1 endpoint has no V2 metadata to read serving defaults from.
    "guidance_scale": 7.5,
}


@dataclass
class FakeV1:
    """A loopback KServe V1 endpoint returning real seeded PNGs; can fail every n-th predict."""

    url: str
    model_name: str = "fake-sd"
    fail_every: int = 0
    status: int = 500
    calls: list[dict[str, Any]] = field(default_factory=list)
    # Set: answer 401 without `Authorization: Bearer TOKEN`, as OpenShift AI's proxy does for auth=true.
    token: str | None = None
    authorizations: list[str | None] = field(default_factory=list)


def _png(seed: int, width: int, height: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def fake_v1() -> Iterator[FakeV1]:
    state = FakeV1(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refused(self) -> bool:
            authorization = self.headers.get("Authorization")
            with lock:
                state.authorizations.append(authorization)
            if state.token is None or authorization == f"Bearer {state.token}":
                return False
            data = b"Unauthorized\n"
            self.send_response(401)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return True

        def do_GET(self) -> None:
            if self._refused():
                return
            if self.path == f"/v1/models/{state.model_name}":
                self._send(200, {"name": state.model_name, "ready": True})
            else:
                self._send(404, {"error": "model not found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self._refused():
                return
            instance = body["instances"][0]
            with lock:
                state.calls.append(instance)
                failing = state.fail_every and len(state.calls) % state.fail_every == 0
            if self.path != f"/v1/models/{state.model_name}:predict":
                self._send(404, {"error": "model not found"})
            elif failing:
                self._send(state.status, {"error": "simulated overload"})
            else:
                image = _png(instance["seed"], instance["width"], instance["height"])
                prediction = {"image": {"b64": base64.b64encode(image).decode(), "format": "png"}}
                self._send(200, {"predictions": [{**prediction, "seed": instance["seed"]}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def three_prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("# three\na red cube\na blue sphere <on> a table & chair\na green cat\n")
    return path


def test_fake_endpoint_run_writes_valid_results_and_images(
    fake_v1: FakeV1, tiny_clip_dir: Path, three_prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    outcome = benchmark_model(
        endpoint=fake_v1.url + "/",
        model_name=fake_v1.model_name,
        clip_model=str(tiny_clip_dir),
        out_dir=out,
        prompts_file=three_prompts,
        seed=7,
        **SMALL,
    )
    results = BenchmarkResults.load(out / "results.json")
    assert results == outcome.results
    assert results.endpoint == fake_v1.url
    assert [level.concurrency for level in results.latency] == [1, 2]
    assert all(level.succeeded == 4 and level.p99_seconds is not None for level in results.latency)
    assert math.isfinite(results.clip_score.mean)
    assert results.clip_score.scored == 3
    assert results.settings.seeds == [7, 8, 9]
    assert (
        sorted(p.name for p in (out / "images").iterdir())
        == results.images
        == ["000.png", "001.png", "002.png"]
    )
    # The saved image is exactly what the endpoint drew for prompt 1 with its fixed seed.
    assert (out / "images" / "001.png").read_bytes() == _png(8, 64, 64)
    # 1 warm-up + 3 images + 2 levels x 4 timed requests.
    assert len(fake_v1.calls) == 12
    assert {c["num_inference_steps"] for c in fake_v1.calls} == {2}
    assert not list(out.glob(".*"))

    from modelpipe.report import render_report

    index = render_report(results, out / "images", tmp_path / "report")
    page = index.read_text()
    assert page.count("<figure>") == 3 and "a blue sphere &lt;on&gt; a table &amp; chair" in page
    with Image.open(tmp_path / "report" / "latency.png") as plot:
        assert plot.format == "PNG"


def test_failed_requests_are_counted_not_fatal(
    fake_v1: FakeV1, tiny_clip_dir: Path, three_prompts: Path, tmp_path: Path
) -> None:
    fake_v1.fail_every = 4
    results = benchmark_model(
        endpoint=fake_v1.url,
        model_name=fake_v1.model_name,
        clip_model=str(tiny_clip_dir),
        out_dir=tmp_path / "out",
        prompts_file=three_prompts,
        **SMALL,
    ).results
    # Call 4 is the third image (prompt 2); calls 8 and 12 fall in the sweep.
    assert results.clip_score.failed == 1
    assert results.clip_score.per_prompt[2].error == 'HTTP 500: {"error": "simulated overload"}'
    assert results.images == ["000.png", "001.png"]
    assert results.summary.errors == 2
    assert results.latency[0].error_samples == ['HTTP 500: {"error": "simulated overload"}']


def test_all_requests_failing_raises_benchmark_error_and_writes_no_results(
    fake_v1: FakeV1, tiny_clip_dir: Path, three_prompts: Path, tmp_path: Path
) -> None:
    fake_v1.fail_every, fake_v1.status = 1, 503
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{}")  # a previous run's file must not survive a failed run
    with pytest.raises(BenchmarkError, match=r"all 1 warm-up requests .* failed: HTTP 503"):
        benchmark_model(
            endpoint=fake_v1.url,
            model_name=fake_v1.model_name,
            clip_model=str(tiny_clip_dir),
            out_dir=out,
            prompts_file=three_prompts,
            **SMALL,
        )
    assert not (out / "results.json").exists()


def test_wrong_model_name_names_the_fix(fake_v1: FakeV1, tiny_clip_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"does not serve model 'nope' \(HTTP 404\)") as info:
        benchmark_model(
            endpoint=fake_v1.url,
            model_name="nope",
            clip_model=str(tiny_clip_dir),
            out_dir=tmp_path,
            **SMALL,
        )
    assert "--model-name" in (info.value.fix or "")


def test_cli_with_s3_clip_model_writes_results_and_keeps_secrets_out(
    fake_v1: FakeV1,
    tiny_clip_dir: Path,
    three_prompts: Path,
    s3_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from modelpipe.cli import main
    from modelpipe.config import S3Settings
    from modelpipe.s3 import make_s3_client, parse_s3_uri
    from modelpipe.uploads import upload_file

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    client = make_s3_client(S3Settings.from_env())
    prefix = parse_s3_uri(f"s3://{s3_server.bucket}/clip/tiny-clip")
    for path in sorted(p for p in tiny_clip_dir.rglob("*") if p.is_file()):
        upload_file(client, path, prefix.child(path.relative_to(tiny_clip_dir).as_posix()))

    out, results_dir, cache = tmp_path / "out", tmp_path / "results", tmp_path / "clip-cache"
    argv = [
        "benchmark",
        "--endpoint",
        fake_v1.url,
        "--model-name",
        fake_v1.model_name,
        "--prompts",
        str(three_prompts),
    ]
    argv += [
        "--clip-model",
        prefix.uri,
        "--clip-cache",
        str(cache),
        "--concurrency",
        "1,2",
        "--requests",
        "2",
    ]
    argv += [
        "--warmup",
        "0",
        "--steps",
        "2",
        "--size",
        "64x64",
        "--guidance",
        "7.5",
        "--benchmark-dir",
        str(out),
        "--results-dir",
        str(results_dir),
    ]
    assert main(argv) == 0

    results = BenchmarkResults.load(out)
    assert (results.clip_model.source, results.clip_model.id) == (prefix.uri, "tiny-clip")
    assert (cache / s3_server.bucket / "clip" / "tiny-clip" / "config.json").is_file()
    assert float((results_dir / "CLIP_SCORE").read_text()) == pytest.approx(results.clip_score.mean, abs=1e-4)
    assert float((results_dir / "P95_SECONDS").read_text()) == pytest.approx(
        results.summary.p95_seconds, abs=1e-4
    )
    captured = capsys.readouterr()
    for text in ((out / "results.json").read_text(), captured.out, captured.err):
        assert s3_server.secret_access_key not in text and s3_server.access_key_id not in text


ENDPOINT_TOKEN = "eyJhbGciOiJSUzI1NiJ9.endpoint-token-s3cr3t-77"


def _token_argv(fake_v1: FakeV1, clip: Path, out: Path, results_dir: Path) -> list[str]:
    return [
        "benchmark", "--endpoint", fake_v1.url, "--model-name", fake_v1.model_name,
        "--clip-model", str(clip), "--concurrency", "1", "--requests", "2", "--warmup", "1",
        "--steps", "2", "--size", "64x64", "--guidance", "7.5",
        "--benchmark-dir", str(out), "--results-dir", str(results_dir), "-v",
    ]  # fmt: skip


def test_cli_sends_the_endpoint_token_and_keeps_it_out_of_output(
    fake_v1: FakeV1,
    tiny_clip_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from modelpipe.cli import main

    fake_v1.token = ENDPOINT_TOKEN
    monkeypatch.setenv("ENDPOINT_TOKEN", ENDPOINT_TOKEN + "\n")  # as a Secret's value may end
    out, results_dir = tmp_path / "out", tmp_path / "results"
    assert main(_token_argv(fake_v1, tiny_clip_dir, out, results_dir)) == 0
    assert BenchmarkResults.load(out).summary.errors == 0
    assert fake_v1.authorizations and set(fake_v1.authorizations) == {f"Bearer {ENDPOINT_TOKEN}"}
    captured = capsys.readouterr()
    written = [p.read_text() for p in [*results_dir.iterdir(), out / "results.json"]]
    for text in (*written, captured.out, captured.err):
        assert "s3cr3t" not in text


def test_cli_without_the_token_exits_1_naming_the_401_and_the_fix(
    fake_v1: FakeV1,
    tiny_clip_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from modelpipe.cli import main

    fake_v1.token = ENDPOINT_TOKEN
    monkeypatch.delenv("ENDPOINT_TOKEN", raising=False)
    out = tmp_path / "out"
    assert main(_token_argv(fake_v1, tiny_clip_dir, out, tmp_path / "results")) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1, errors
    assert "HTTP 401" in errors[0] and "ENDPOINT_TOKEN" in errors[0] and "NAME-sa-token" in errors[0]
    assert fake_v1.calls == [], "no generation before access is settled"
    assert not (out / "results.json").exists()


def test_reading_served_defaults_without_the_token_names_the_401(
    fake_v1: FakeV1, tiny_clip_dir: Path, tmp_path: Path
) -> None:
    from modelpipe.errors import ConfigError

    fake_v1.token = ENDPOINT_TOKEN
    settings = {key: value for key, value in SMALL.items() if key != "steps"}
    with pytest.raises(ConfigError, match=r"requires a bearer token \(HTTP 401 Unauthorized\)") as info:
        benchmark_model(
            endpoint=fake_v1.url,
            model_name=fake_v1.model_name,
            clip_model=str(tiny_clip_dir),
            out_dir=tmp_path,
            **settings,
        )
    assert "ENDPOINT_TOKEN" in (info.value.fix or "")


def test_wrong_token_is_reported_as_refused_without_its_value(
    fake_v1: FakeV1, tiny_clip_dir: Path, tmp_path: Path
) -> None:
    from pydantic import SecretStr

    fake_v1.token = ENDPOINT_TOKEN
    with pytest.raises(BenchmarkError, match=r"refused the bearer token .*HTTP 401") as info:
        benchmark_model(
            endpoint=fake_v1.url,
            model_name=fake_v1.model_name,
            clip_model=str(tiny_clip_dir),
            out_dir=tmp_path,
            endpoint_token=SecretStr("another-token-s3cr3t"),
            **SMALL,
        )
    assert "s3cr3t" not in str(info.value) + (info.value.fix or "")


def test_real_runtime_benchmark_results_match_the_schema(
    runtime_server: Any, tiny_clip_dir: Path, three_prompts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    benchmark_model(
        endpoint=runtime_server.url,
        model_name=runtime_server.model_name,
        clip_model=str(tiny_clip_dir),
        out_dir=out,
        prompts_file=three_prompts,
        concurrency=(1, 2),
        requests=2,
        warmup=1,
        steps=2,
        width=64,
        height=64,
        timeout_seconds=120,
    )
    results = BenchmarkResults.load(out)
    assert math.isfinite(results.clip_score.mean) and results.clip_score.scored == 3
    assert [(level.concurrency, level.succeeded) for level in results.latency] == [(1, 2), (2, 2)]
    assert results.summary.p95_seconds >= results.summary.p50_seconds > 0
    assert results.latency[0].seconds_per_step == pytest.approx(results.latency[0].p50_seconds / 2)
    for name in results.images:
        with Image.open(out / "images" / name) as image:
            assert (image.format, image.size) == ("PNG", (64, 64))
