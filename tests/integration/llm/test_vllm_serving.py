"""The tiny LLM on the real vLLM CPU server, deployed with `modelpipe deploy --target local`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch
from modelpipe.config import S3Settings
from modelpipe.errors import DeployError
from modelpipe.processes import alive
from modelpipe.steps.deploy import LocalOptions, deploy_model
from modelpipe.targets import local_vllm
from modelpipe.targets.vllm import VllmOptions

from tests.fixtures.llm import LlmServer
from tests.support.tools import REPO_ROOT, free_port

pytestmark = pytest.mark.integration

PROMPT = "Question: What is the capital of France? Answer: Paris is the capital"
TOLERANCE = 1e-3


def _post(server: LlmServer, path: str, body: dict[str, object]) -> dict:  # type: ignore[type-arg]
    response = httpx.post(f"{server.endpoint_url}{path}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_local_deploy_reports_the_endpoint_of_a_live_vllm_server(llm_server: LlmServer) -> None:
    deployed = llm_server.deployed
    assert deployed.endpoint_url.startswith("http://127.0.0.1:")
    assert deployed.served_model_name == "tiny-llm"
    assert deployed.runtime_pid is not None and alive(deployed.runtime_pid)
    models = httpx.get(f"{deployed.endpoint_url}/v1/models", timeout=10).json()["data"]
    assert [(m["id"], m["max_model_len"]) for m in models] == [("tiny-llm", 512)]
    state = json.loads((llm_server.state_dir / local_vllm.STATE_FILE).read_text())
    assert state["pid"] == deployed.runtime_pid


def test_completion_logprobs_match_a_transformers_forward_pass(llm_server: LlmServer) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llm_server.model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(llm_server.model_dir, local_files_only=True).eval()
    ids = tokenizer(PROMPT)["input_ids"]
    with torch.no_grad():
        expected = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)

    body = {"model": "tiny-llm", "prompt": ids, "max_tokens": 1, "temperature": 0, "echo": True}
    served = _post(llm_server, "/v1/completions", body | {"logprobs": 1, "return_tokens_as_token_ids": True})
    logprobs = served["choices"][0]["logprobs"]
    tokens = [int(token.removeprefix("token_id:")) for token in logprobs["tokens"]]
    assert tokens[: len(ids)] == ids, "echo must return the prompt tokens as sent"
    assert logprobs["token_logprobs"][0] is None, "the first token has no context to be scored in"
    for position in range(1, len(ids)):
        want = float(expected[position - 1, ids[position]])
        assert logprobs["token_logprobs"][position] == pytest.approx(want, abs=TOLERANCE), position
    # The one generated token: greedy, so the argmax of the last position, with its logprob.
    assert tokens[len(ids)] == int(expected[-1].argmax())
    assert logprobs["token_logprobs"][len(ids)] == pytest.approx(float(expected[-1].max()), abs=TOLERANCE)
    assert float(expected[-1].max() - expected[-1].min()) > 1.0, "peaked logits make the check meaningful"


def test_chat_completion_renders_the_models_chat_template(llm_server: LlmServer) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(llm_server.model_dir, local_files_only=True)
    messages = [{"role": "user", "content": "What do plants need to grow?"}]
    rendered = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, return_dict=True
    )
    prompt_ids = rendered["input_ids"]
    assert prompt_ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
    served = _post(
        llm_server,
        "/v1/chat/completions",
        {"model": "tiny-llm", "messages": messages, "max_tokens": 4, "temperature": 0},
    )
    assert served["usage"]["prompt_tokens"] == len(prompt_ids)
    assert served["choices"][0]["message"]["role"] == "assistant"


def test_cli_redeploy_with_the_same_settings_reuses_the_running_server(
    llm_server: LlmServer, tmp_path: Path
) -> None:
    port = llm_server.endpoint_url.rsplit(":", 1)[1]
    results = tmp_path / "results"
    command = [
        sys.executable, "-m", "modelpipe", "deploy", "--target", "local", "--model-kind", "text-generation",
        "--name", "tiny-llm", "--model-uri", llm_server.model_uri, "--port", port,
        "--state-dir", str(llm_server.state_dir), "--results-dir", str(results),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        env={**os.environ, **llm_server.s3_env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "created: false" in done.stdout
    assert (results / "ENDPOINT_URL").read_text() == llm_server.endpoint_url
    assert (results / "RUNTIME_PID").read_text() == str(llm_server.deployed.runtime_pid)


@pytest.mark.slow
def test_vllm_refusing_the_settings_fails_the_deploy_with_its_log_lines(
    llm_server: LlmServer, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    with pytest.raises(DeployError) as excinfo:
        deploy_model(
            target="local",
            name="too-long",
            model_uri=llm_server.model_uri,
            model_kind="text-generation",
            vllm=VllmOptions(max_model_len=4096),
            local=LocalOptions(
                state_dir=state_dir, s3=S3Settings.from_env(llm_server.s3_env), port=free_port(), timeout=300
            ),
        )
    message = excinfo.value.one_line()
    assert "exited before it was ready" in message
    assert "4096" in message, "the message carries vLLM's own reason"
    assert not (state_dir / local_vllm.STATE_FILE).exists()
