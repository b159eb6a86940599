"""Find and run lm-eval and guidellm, which live in their own environment (the evaluation venv or image)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelpipe.config import (
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY,
    ENDPOINT_TOKEN,
    MODEL_REGISTRY_TOKEN,
    MODELPIPE_EVAL_BIN,
)
from modelpipe.errors import ConfigError, EvaluationError
from modelpipe.redaction import redact

log = logging.getLogger(__name__)

LM_EVAL = "lm_eval"
EVAL_VENV = ".venv-eval"
# The repository around an editable install (tools/modelpipe/ -> repo), where `make eval-env` puts the venv.
_REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDELLM = "guidellm"
SETUP_HINT = f"run `make eval-env` (creates .venv-eval) and set {MODELPIPE_EVAL_BIN}=.venv-eval/bin"
# Never handed to the tools: they talk to the endpoint only, not to S3 or the registry.
# The endpoint token too: a tool gets it only under the name it reads (lm-eval OPENAI_API_KEY, guidellm's
# scenario file), from the step that knows the tool. An inherited OPENAI_API_KEY (someone's OpenAI key)
# would be sent to whatever endpoint lm-eval is pointed at, so it is withheld as well.
# (lm-eval's local-completions / local-chat-completions send OPENAI_API_KEY as their bearer token.)
OPENAI_API_KEY = "OPENAI_API_KEY"
_WITHHELD = frozenset(
    {AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MODEL_REGISTRY_TOKEN, ENDPOINT_TOKEN, OPENAI_API_KEY}
)
# Offline switches of huggingface_hub, datasets and transformers: nothing is fetched from the Hub.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
_TAIL_LINES = 15


@dataclass(frozen=True)
class EvalTools:
    """Where the evaluation tools are.

    Attributes:
        bin_dir: Folder holding ``lm_eval``, ``guidellm`` and the ``python`` they run on.
    """

    bin_dir: Path

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    def executable(self, name: str) -> Path:
        """Path of ``name`` in the tools folder.

        Raises:
            ConfigError: The tool is not installed there.
        """
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise ConfigError(f"{name} not found in {self.bin_dir}", fix=SETUP_HINT)
        return path


def find_eval_tools(bin_dir: str | Path | None) -> EvalTools:
    """The tools folder: ``bin_dir`` (flag or MODELPIPE_EVAL_BIN), else ``.venv-eval/bin`` of the repository
    (or of the working directory) as ``make eval-env`` creates it, else the folder of ``lm_eval`` on PATH.

    Raises:
        ConfigError: None of these has lm_eval, or the given folder does not exist.
    """
    if bin_dir:
        folder = Path(bin_dir).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"evaluation tools folder {folder} does not exist", fix=SETUP_HINT)
        return EvalTools(folder.absolute())
    for root in (_REPO_ROOT, Path.cwd()):
        if (root / EVAL_VENV / "bin" / LM_EVAL).is_file():
            return EvalTools((root / EVAL_VENV / "bin").absolute())
    found = shutil.which(LM_EVAL)
    if found is None:
        raise ConfigError(f"{LM_EVAL} is not on PATH and {MODELPIPE_EVAL_BIN} is not set", fix=SETUP_HINT)
    return EvalTools(Path(found).absolute().parent)


def tool_env(
    base: Mapping[str, str], *, offline: bool, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a tool runs with: ``base`` without our storage and registry secrets, plus switches."""
    env = {key: value for key, value in base.items() if key not in _WITHHELD}
    if offline:
        env.update(OFFLINE_ENV)
    env.update(extra or {})
    return env


def run_tool(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str],
    log_path: Path,
    timeout_seconds: float,
    cwd: Path | None = None,
    what: str,
) -> subprocess.CompletedProcess[str]:
    """Run one tool to completion with its output in ``log_path``.

    Args:
        argv: The command; its first element from :meth:`EvalTools.executable`.
        env: From :func:`tool_env`.
        log_path: stdout and stderr together (replaced).
        timeout_seconds: Kill the tool after this long.
        cwd: Working directory.
        what: Names the run in errors, e.g. "lm-eval on arc_easy".

    Returns:
        The finished process (returncode 0).

    Raises:
        EvaluationError: The tool exited non-zero or timed out; the message ends with its last log lines.
    """
    command = [str(part) for part in argv]
    log.debug("running %s", redact(" ".join(command)))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as out:
        try:
            done = subprocess.run(
                command,
                env=dict(env),
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                timeout=timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise EvaluationError(
                f"{what} did not finish within {timeout_seconds:g} s; log: {log_path}",
                fix="raise the timeout or lower the limit / request count",
            ) from err
    log.info("%s finished in %.1f s (exit %d)", what, time.monotonic() - started, done.returncode)
    if done.returncode != 0:
        raise EvaluationError(
            f"{what} failed with exit code {done.returncode}; log {log_path}:\n{log_tail(log_path)}",
            fix="read the log; a wrong endpoint, model name or tokenizer is the usual cause",
        )
    return done


def redact_outputs(folder: Path) -> None:
    """Mask known secret values in the text files a tool wrote under ``folder`` (its logs and reports), in
    case it echoed a token it was given; those files are published with the results."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        cleaned = redact(text)
        if cleaned != text:
            path.write_text(cleaned, encoding="utf-8")


def log_tail(path: Path, lines: int = _TAIL_LINES) -> str:
    """The last lines of a log, redacted, for an error message."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return redact("\n".join(text.splitlines()[-lines:]))
