"""Resolver taskRefs map to local equivalents through one table; git-clone copies the working tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.tools import require_tool
from tests.unit.local.tekton.helpers import Layout, pipeline, ref, run, sh, task


def _repo(path: Path) -> str:
    require_tool("git")
    path.mkdir()
    git = [
        "git",
        "-C",
        str(path),
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
    ]
    (path / "tracked.txt").write_text("committed\n")
    (path / ".gitignore").write_text("ignored/\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    (path / "tracked.txt").write_text("edited, not committed\n")
    (path / "new.txt").write_text("untracked\n")
    (path / "ignored").mkdir()
    (path / "ignored" / "big.bin").write_text("never copied")
    return subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


CLUSTER_GIT_CLONE = {
    "resolver": "cluster",
    "params": [
        {"name": "kind", "value": "task"},
        {"name": "name", "value": "git-clone"},
        {"name": "namespace", "value": "openshift-pipelines"},
    ],
}
SHOW = task(
    "show",
    params=[{"name": "commit"}],
    workspaces=[{"name": "src"}],
    steps=[sh("s", 'echo "commit=$(params.commit)"; cat "$(workspaces.src.path)/checkout/tracked.txt"')],
)


def test_cluster_git_clone_copies_the_working_tree_and_emits_commit(tmp_path: Path):
    head = _repo(tmp_path / "repo")
    layout = Layout(tmp_path / "layout")
    clone = {
        "name": "fetch",
        "taskRef": CLUSTER_GIT_CLONE,
        "params": [
            {"name": "URL", "value": "https://example.com/x.git"},
            {"name": "SUBDIRECTORY", "value": "checkout"},
        ],
        "workspaces": [{"name": "output", "workspace": "source"}],
    }
    show = ref(
        "show",
        "show",
        params=[{"name": "commit", "value": "$(tasks.fetch.results.COMMIT)"}],
        workspaces=[{"name": "src", "workspace": "source"}],
    )
    layout.write(pipeline([clone, show], workspaces=[{"name": "source"}]), SHOW)
    source = tmp_path / "ws"
    done = run(layout, workspaces={"source": source}, source_dir=tmp_path / "repo")
    assert done.result.status == "Succeeded"
    assert done.results("fetch")["COMMIT"] == head == done.results("fetch")["commit"]
    assert done.results("fetch")["url"] == (tmp_path / "repo").resolve().as_uri()
    assert f"[show/s] commit={head}" in done.output
    assert "[show/s] edited, not committed" in done.output
    assert (source / "checkout" / "new.txt").exists()
    assert not (source / "checkout" / "ignored").exists()
    assert "local equivalent of git-clone" in done.output


def test_cluster_resolver_to_a_task_in_tasks_folder_uses_that_file(tmp_path: Path):
    layout = Layout(tmp_path)
    remote = {
        "name": "r",
        "taskRef": {
            "resolver": "cluster",
            "params": [{"name": "name", "value": "hello"}],
        },
    }
    layout.write(pipeline([remote]), task("hello", steps=[sh("s", "echo from-file")]))
    assert "[r/s] from-file" in run(layout).output


def test_git_clone_outside_a_git_tree_fails_with_a_clear_message(tmp_path: Path):
    layout = Layout(tmp_path / "layout")
    clone = {
        "name": "fetch",
        "taskRef": CLUSTER_GIT_CLONE,
        "workspaces": [{"name": "output", "workspace": "source"}],
    }
    layout.write(pipeline([clone], workspaces=[{"name": "source"}]))
    (tmp_path / "plain").mkdir()
    done = run(layout, source_dir=tmp_path / "plain")
    assert done.status("fetch") == "Failed"
    assert "is not a git working tree" in done.result.failure_message()


@pytest.mark.parametrize("resolver", ["bundles", "hub"])
def test_name_param_resolvers_reach_the_git_clone_equivalent(tmp_path: Path, resolver: str):
    _repo(tmp_path / "repo")
    layout = Layout(tmp_path / "layout")
    ref_ = {"resolver": resolver, "params": [{"name": "name", "value": "git-clone"}]}
    clone = {
        "name": "fetch",
        "taskRef": ref_,
        "workspaces": [{"name": "output", "workspace": "source"}],
    }
    layout.write(pipeline([clone], workspaces=[{"name": "source"}]))
    assert run(layout, source_dir=tmp_path / "repo").status("fetch") == "Succeeded"
