"""deploy.sh and the run scripts: .env validation, secret masking, rendering, and the calls they make.

The cluster side is a fake kubectl (fake_kubectl.sh) that records calls; rendering and Secret building go
to the real kubectl, offline.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.tools import REPO_ROOT, require_tool

FAKE_KUBECTL = Path(__file__).with_name("fake_kubectl.sh")
SECRET_VALUES = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEACCESSKEY42",
    "AWS_SECRET_ACCESS_KEY": "s3cr3t-with-'quote\"-and-$dollar",
    "HF_TOKEN": "hf_SECRETTOKENVALUE1234",
    "MODEL_REGISTRY_TOKEN": "registry-token-SECRET-5678",
}
# The flags run-model-testing.sh requires, with valid values.
TESTING_REQUIRED = [
    "--registered-model-id",
    "1",
    "--model-version-id",
    "2",
    "--model-uri",
    "s3://b/m",
    "--name",
    "m",
]
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def env_file(tmp_path: Path, **overrides: str | None) -> Path:
    """A filled .env: every secret set to a recognisable value; None removes a key."""
    auth = tmp_path / "auth.json"
    auth.write_text('{"auths": {"quay.io": {"auth": "dXNlcjpwYXNz"}}}', encoding="utf-8")
    values: dict[str, str | None] = {
        "NAMESPACE": "modelpipe",
        "AWS_S3_ENDPOINT": "http://minio:9000",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_S3_BUCKET": "models",
        "MODEL_REGISTRY_URL": "https://registry.example.com",
        "MODEL_REGISTRY_AUTHOR": "ci",
        "TOOLS_IMAGE": "quay.io/acme/modelpipe-tools:0.2.0",
        "RUNTIME_IMAGE_REPO": "quay.io/acme/diffusers-runtime",
        "REGISTRY_AUTH_FILE": str(auth),
        "GIT_URL": "https://git.example.com/acme/modelpipe.git",
        "GIT_REVISION": "v0.2.0",
        **SECRET_VALUES,
        **overrides,
    }
    path = tmp_path / "test.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items() if v is not None), encoding="utf-8")
    return path


@pytest.fixture
def fake_cluster(tmp_path: Path) -> dict[str, str]:
    """Environment that puts the fake kubectl first on PATH (and no oc)."""
    real = require_tool("kubectl")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(FAKE_KUBECTL, bin_dir / "kubectl")
    record = tmp_path / "calls"
    record.mkdir()
    return {
        **os.environ,
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "REAL_KUBECTL": real,
        "FAKE_LOG": str(record / "log"),
        "FAKE_DIR": str(record),
    }


def run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = env or {**os.environ, "KUBECONFIG": "/nonexistent"}
    return subprocess.run(
        [str(REPO_ROOT / script), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


def calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LOG"])
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def recorded(env: dict[str, str], kind: str) -> list[list[dict]]:
    files = sorted(Path(env["FAKE_DIR"]).glob(f"{kind}-*.yaml"), key=lambda p: int(p.stem.split("-")[1]))
    return [[d for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d] for f in files]


def assert_no_secret_value(*texts: str) -> None:
    for value in SECRET_VALUES.values():
        for text in texts:
            assert value not in text
            assert base64.b64encode(value.encode()).decode() not in text


def test_deploy_names_missing_keys_without_values(tmp_path: Path, fake_cluster: dict[str, str]) -> None:
    env = env_file(tmp_path, AWS_SECRET_ACCESS_KEY=None, MODEL_REGISTRY_URL="")
    proc = run("deploy.sh", "--env-file", str(env), env=fake_cluster)
    assert proc.returncode == 1
    assert "AWS_SECRET_ACCESS_KEY" in proc.stderr
    assert "MODEL_REGISTRY_URL" in proc.stderr
    assert_no_secret_value(proc.stdout, proc.stderr)
    assert calls(fake_cluster) == []


def test_deploy_dry_run_masks_every_secret_value(tmp_path: Path) -> None:
    require_tool("kubectl")
    proc = run("deploy.sh", "--dry-run", "--overlay", "openshift", "--env-file", str(env_file(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert_no_secret_value(proc.stdout, proc.stderr)
    for key in (*SECRET_VALUES, ".dockerconfigjson"):
        assert f"{key}: <redacted>" in proc.stdout


def test_deploy_dry_run_renders_for_the_env_namespace_and_images(tmp_path: Path) -> None:
    require_tool("kubectl")
    env = env_file(tmp_path, NAMESPACE="team-a")
    proc = run("deploy.sh", "--dry-run", "--overlay", "kubernetes", "--env-file", str(env))
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout.replace("<redacted>", "x")) if d]
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] not in {"Namespace"}}
    assert namespaces == {"team-a"}
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"] == ["team-a"]
    for binding in (d for d in docs if d["kind"] == "RoleBinding"):
        assert {s["namespace"] for s in binding["subjects"]} == {"team-a"}
    step_images = {s["image"] for d in docs if d["kind"] == "Task" for s in d["spec"]["steps"]}
    assert step_images == {"quay.io/acme/modelpipe-tools:0.2.0"}
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "modelpipe-config")
    assert config["data"]["MODEL_REGISTRY_URL"] == "https://registry.example.com"
    assert config["data"]["AWS_S3_BUCKET"] == "models"
    run_doc = next(d for d in docs if d["kind"] == "PipelineRun")
    params = {p["name"]: p["value"] for p in run_doc["spec"]["params"]}
    assert params["tools-image"] == "quay.io/acme/modelpipe-tools:0.2.0"
    assert params["git-revision"] == "v0.2.0"


@pytest.mark.parametrize("bound", [False, True])
def test_deploy_binds_registry_auth_only_when_the_env_names_a_file(tmp_path: Path, bound: bool) -> None:
    require_tool("kubectl")
    env = env_file(tmp_path) if bound else env_file(tmp_path, REGISTRY_AUTH_FILE=None)
    proc = run("deploy.sh", "--dry-run", "--overlay", "kubernetes", "--env-file", str(env))
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout.replace("<redacted>", "x")) if d]
    run_doc = next(d for d in docs if d["kind"] == "PipelineRun")
    workspaces = {w["name"]: w for w in run_doc["spec"]["workspaces"]}
    assert set(workspaces) == ({"source", "registry-auth"} if bound else {"source"})
    if bound:
        assert workspaces["registry-auth"]["secret"] == {"secretName": "modelpipe-registry-auth"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("TOOLS_IMAGE", "quay.io/a/tools:latest", "TOOLS_IMAGE must be REPO:TAG"),
        ("RUNTIME_IMAGE_REPO", "quay.io/a/runtime:1.0", "RUNTIME_IMAGE_REPO must be a repository"),
        ("NAMESPACE", "Team_A", "NAMESPACE must be a DNS label"),
        ("REGISTRY_AUTH_FILE", "/nonexistent/auth.json", "cannot read /nonexistent/auth.json"),
    ],
)
def test_deploy_names_a_bad_env_value(tmp_path: Path, key: str, value: str, message: str) -> None:
    proc = run("deploy.sh", "--dry-run", "--env-file", str(env_file(tmp_path, **{key: value})))
    assert proc.returncode == 1
    assert message in proc.stderr
    assert proc.stdout == ""


def test_deploy_applies_with_separate_field_managers_and_starts_build_once(
    tmp_path: Path, fake_cluster: dict[str, str]
) -> None:
    proc = run("deploy.sh", "--overlay", "openshift", "--env-file", str(env_file(tmp_path)), env=fake_cluster)
    assert proc.returncode == 0, proc.stderr
    assert_no_secret_value(proc.stdout, proc.stderr)
    log = calls(fake_cluster)
    applies = [c for c in log if c.startswith("apply")]
    assert [
        ("--field-manager=modelpipe-deploy" in c, "--field-manager=modelpipe-secrets" in c) for c in applies
    ] == [
        (True, False),
        (False, True),
    ]
    assert all("--server-side" in c for c in applies)
    manifests, secrets = recorded(fake_cluster, "apply")
    layout = next(d for d in manifests if d["kind"] == "Secret")
    assert "data" not in layout  # the committed layout never overwrites the keys
    data = next(d for d in secrets if d["metadata"]["name"] == "aws-connection-modelpipe")["data"]
    assert base64.b64decode(data["AWS_SECRET_ACCESS_KEY"]).decode() == SECRET_VALUES["AWS_SECRET_ACCESS_KEY"]
    assert {d["metadata"]["name"] for d in secrets} == {
        "aws-connection-modelpipe",
        "modelpipe-hf-token",
        "modelpipe-registry-token",
        "modelpipe-registry-auth",
    }
    (created,) = recorded(fake_cluster, "create")
    assert created[0]["kind"] == "PipelineRun" and created[0]["metadata"]["generateName"] == "build-images-"
    assert [c for c in log if c.startswith("create -n")] == ["create -n modelpipe -o name -f -"]


def test_deploy_does_not_start_a_second_build(tmp_path: Path, fake_cluster: dict[str, str]) -> None:
    fake_cluster["FAKE_BUILD_RUNS"] = "pipelinerun.tekton.dev/build-images-abcde"
    proc = run("deploy.sh", "--env-file", str(env_file(tmp_path)), env=fake_cluster)
    assert proc.returncode == 0, proc.stderr
    assert recorded(fake_cluster, "create") == []
    assert "already ran" in proc.stderr


def test_deploy_pins_images_to_the_succeeded_build_digests(
    tmp_path: Path, fake_cluster: dict[str, str]
) -> None:
    fake_cluster.update(FAKE_TOOLS_DIGEST=DIGEST_A, FAKE_RUNTIME_DIGEST=DIGEST_B)
    proc = run("deploy.sh", "--env-file", str(env_file(tmp_path)), env=fake_cluster)
    assert proc.returncode == 0, proc.stderr
    manifests = recorded(fake_cluster, "apply")[0]
    task_images = {s["image"] for d in manifests if d["kind"] == "Task" for s in d["spec"]["steps"]}
    assert task_images == {f"quay.io/acme/modelpipe-tools@{DIGEST_A}"}
    runtime = next(d for d in manifests if d["kind"] == "ServingRuntime")
    assert runtime["spec"]["containers"][0]["image"] == f"quay.io/acme/diffusers-runtime@{DIGEST_B}"


def _params(manifest: str) -> dict[str, str]:
    (doc,) = [d for d in yaml.safe_load_all(manifest) if d]
    return {p["name"]: p["value"] for p in doc["spec"]["params"]}


def test_run_model_import_maps_flags_to_params() -> None:
    proc = run(
        "run-model-import.sh", "--dry-run", "--env-file", "/dev/null",
        "--source", "Acme/My_Model.v2", "--revision", "abc123", "--version-name", "v7",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    params = _params(proc.stdout)
    assert params["source"] == "hf://Acme/My_Model.v2"
    assert params["revision"] == "abc123"
    assert params["version-name"] == "v7"
    assert params["model-name"] == params["name"] == "my-model-v2"


def test_run_model_import_takes_every_pipeline_param_by_its_name() -> None:
    proc = run(
        "run-model-import.sh", "--dry-run", "--env-file", "/dev/null",
        "--model-name", "Tiny SD", "--name", "tiny", "--concurrency", "1,2", "--min-clip-score", "20",
        "--revision", "",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    params = _params(proc.stdout)
    assert (params["model-name"], params["name"], params["concurrency"]) == ("Tiny SD", "tiny", "1,2")
    assert params["min-clip-score"] == "20"
    assert "revision" not in params  # an empty value means the param's default


def test_run_model_import_rejects_a_name_that_is_no_dns_label() -> None:
    proc = run("run-model-import.sh", "--dry-run", "--env-file", "/dev/null", "--name", "Tiny SD")
    assert proc.returncode == 1
    assert "--name 'Tiny SD' is not a DNS-1035 label" in proc.stderr


def test_run_model_import_rejects_a_malformed_model() -> None:
    proc = run("run-model-import.sh", "--dry-run", "--source", "not/a/model")
    assert proc.returncode == 1
    assert "model source 'not/a/model' is not ORG/REPO" in proc.stderr


def test_run_script_params_survive_quotes_and_backslashes() -> None:
    value = 'say "hi": \\o/ #1 $HOME\nsecond line'
    proc = run("run-model-import.sh", "--dry-run", "--env-file", "/dev/null", "--description", value)
    assert proc.returncode == 0, proc.stderr
    assert _params(proc.stdout)["description"] == value


def test_run_model_import_reads_namespace_and_settings_from_the_env_file(tmp_path: Path) -> None:
    settings = tmp_path / "run.env"
    settings.write_text("NAMESPACE=team-b\nAWS_S3_BUCKET=models-b\nHF_TOKEN=hf_unused\n", encoding="utf-8")
    proc = run("run-model-import.sh", "--dry-run", "--env-file", str(settings))
    assert proc.returncode == 0, proc.stderr
    (doc,) = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert doc["metadata"]["namespace"] == "team-b"
    assert _params(proc.stdout)["s3-bucket"] == "models-b"
    assert "hf_unused" not in proc.stdout


@pytest.mark.parametrize(
    ("script", "required"), [("run-model-import.sh", []), ("run-model-testing.sh", TESTING_REQUIRED)]
)
def test_run_scripts_reject_an_env_file_that_does_not_exist(
    tmp_path: Path, script: str, required: list[str]
) -> None:
    proc = run(script, "--dry-run", *required, "--env-file", str(tmp_path / "missing.env"))
    assert proc.returncode == 1
    assert f"{tmp_path / 'missing.env'} not found" in proc.stderr


@pytest.mark.parametrize(
    ("script", "required"), [("run-model-import.sh", []), ("run-model-testing.sh", TESTING_REQUIRED)]
)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modle", "x"], "unknown argument '--modle'"),
        (["--param", "x=y"], "unknown argument '--param'"),
        (["--namespace"], "--namespace needs a value"),
        (["--namespace", "x\n  evil: 1"], "--namespace must be a DNS label"),
    ],
)
def test_run_scripts_name_a_bad_flag(script: str, required: list[str], args: list[str], message: str) -> None:
    proc = run(script, "--dry-run", "--env-file", "/dev/null", *required, *args)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert proc.stdout == ""


def test_run_model_testing_names_every_missing_flag() -> None:
    proc = run("run-model-testing.sh", "--dry-run")
    assert proc.returncode == 1
    for flag in ("--registered-model-id", "--model-version-id", "--model-uri", "--name"):
        assert flag in proc.stderr


def test_run_model_testing_rejects_a_model_uri_that_is_not_s3() -> None:
    args = [*TESTING_REQUIRED[:5], "/models/m", *TESTING_REQUIRED[6:]]
    proc = run("run-model-testing.sh", "--dry-run", "--env-file", "/dev/null", *args)
    assert proc.returncode == 1
    assert "--model-uri must be an s3:// URI" in proc.stderr


def test_run_model_testing_with_endpoint_skips_deploy() -> None:
    proc = run(
        "run-model-testing.sh",
        "--dry-run",
        "--env-file",
        "/dev/null",
        *TESTING_REQUIRED,
        "--endpoint",
        "http://e:8080",
    )
    assert proc.returncode == 0, proc.stderr
    params = _params(proc.stdout)
    assert (params["deploy"], params["endpoint"]) == ("false", "http://e:8080")


def test_run_model_import_creates_the_run_and_prints_its_name(fake_cluster: dict[str, str]) -> None:
    proc = run("run-model-import.sh", "--env-file", "/dev/null", env=fake_cluster)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pipelinerun.tekton.dev/build-images-x7k2p"
    assert calls(fake_cluster) == ["create -n modelpipe -o name -f -"]
    (created,) = recorded(fake_cluster, "create")
    assert created[0]["spec"]["pipelineRef"]["name"] == "model-import"


@pytest.mark.parametrize(
    ("script", "subcommand"), [("run-model-import.sh", "import"), ("run-model-testing.sh", "test")]
)
def test_local_flag_hands_the_other_arguments_to_modelpipe_local(
    tmp_path: Path, script: str, subcommand: str
) -> None:
    shutil.copy2(REPO_ROOT / script, tmp_path / script)
    (tmp_path / "gitops" / "scripts").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "gitops/scripts/lib.sh", tmp_path / "gitops/scripts/lib.sh")
    (tmp_path / "Makefile").write_text("venv:\n\t@echo venv-ready >&2\n", encoding="utf-8")
    fake = tmp_path / ".venv" / "bin" / "modelpipe"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\nprintf "%s|" "$@"\n', encoding="utf-8")
    fake.chmod(0o755)
    proc = subprocess.run(
        [str(tmp_path / script), "--name", "my model", "--local", "--keep-running"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"local|{subcommand}|--name|my model|--keep-running|"
