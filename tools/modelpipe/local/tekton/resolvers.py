"""The one table mapping remote taskRefs (resolvers) to local equivalents, and the built-in git-clone.

resolver                          matched by                              local equivalent
--------------------------------  --------------------------------------  ------------------------------
cluster, hub, bundles             param ``name`` = ``git-clone``          working-tree copy (built-in)
git (pathInRepo), http (url)      file stem ``git-clone``                 working-tree copy (built-in)
cluster, hub, bundles, git, http  a Task of that name in ``tasks/``       that Task file
anything else                     -                                       UnsupportedTektonFeatureError

The built-in git-clone copies the files git knows in the working tree (tracked and untracked, not ignored,
so uncommitted edits are what runs) into the ``output`` workspace (under ``SUBDIRECTORY``/``subdirectory``)
and emits the results both catalog spellings use: ``commit``/``COMMIT`` (HEAD), ``url``/``URL`` (``file://``
of the working tree) and ``committer-date``/``COMMITTER_DATE``. The URL and revision params are not fetched.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelpipe.errors import LocalRunError, TektonSpecError, UnsupportedTektonFeatureError
from modelpipe.local.tekton.model import ParamSpec, ParamValue, ResultDecl, Step, Task, TaskRef, WorkspaceDecl

NAME_PARAM_RESOLVERS = ("cluster", "hub", "bundles")
PATH_PARAM_RESOLVERS = {"git": "pathInRepo", "http": "url"}
GIT_CLONE = "git-clone"

_GIT_CLONE_PARAMS = [
    "url",
    "revision",
    "refspec",
    "submodules",
    "depth",
    "sslVerify",
    "crtFileName",
    "subdirectory",
    "sparseCheckoutDirectories",
    "deleteExisting",
    "httpProxy",
    "httpsProxy",
    "noProxy",
    "verbose",
    "gitInitImage",
    "userHome",
    "URL",
    "REVISION",
    "REFSPEC",
    "SUBMODULES",
    "DEPTH",
    "SSL_VERIFY",
    "CRT_FILENAME",
    "SUBDIRECTORY",
    "SPARSE_CHECKOUT_DIRECTORIES",
    "DELETE_EXISTING",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "VERBOSE",
    "USER_HOME",
]
GIT_CLONE_TASK = Task(
    name=GIT_CLONE,
    params=tuple(ParamSpec(name=n, default="") for n in _GIT_CLONE_PARAMS),
    workspaces=(
        WorkspaceDecl("output"),
        WorkspaceDecl("ssh-directory", optional=True),
        WorkspaceDecl("basic-auth", optional=True),
        WorkspaceDecl("ssl-ca-directory", optional=True),
    ),
    results=tuple(
        ResultDecl(n) for n in ("commit", "url", "committer-date", "COMMIT", "URL", "COMMITTER_DATE")
    ),
    steps=(Step(name="clone", command=("builtin:git-clone",)),),
    source="built-in local equivalent of git-clone (modelpipe.local.tekton.resolvers)",
    builtin=GIT_CLONE,
)


@dataclass(frozen=True)
class BuiltinContext:
    """What a built-in task gets: its params, workspace folders, results folder, the source tree, a logger."""

    params: Mapping[str, ParamValue]
    workspaces: Mapping[str, Path | None]
    results_dir: Path
    source_dir: Path
    log: Callable[[str], None]


def _ref_name(ref: TaskRef, where: str) -> str:
    resolver = ref.resolver or ""
    if resolver in NAME_PARAM_RESOLVERS:
        name = ref.resolver_params.get("name")
    elif resolver in PATH_PARAM_RESOLVERS:
        path = ref.resolver_params.get(PATH_PARAM_RESOLVERS[resolver], "")
        name = PurePosixPath(path).stem if path else None
    else:
        raise UnsupportedTektonFeatureError(
            f"{where}: resolver {resolver!r} has no local equivalent",
            fix="see the table in tools/modelpipe/local/tekton/resolvers.py",
        )
    if not name:
        raise TektonSpecError(f"{where}: {resolver} resolver without a task name")
    return name


def resolve_task_ref(ref: TaskRef, tasks: Mapping[str, Task], where: str) -> Task:
    """The Task a taskRef names: from ``tasks`` by name, or through the resolver table above.

    Raises:
        TektonSpecError: No Task of that name in the tasks folder.
        UnsupportedTektonFeatureError: A resolver reference with no local equivalent.
    """
    if ref.resolver is None:
        if ref.name is None:
            raise TektonSpecError(f"{where}: taskRef has neither a name nor a resolver")
        if ref.name not in tasks:
            known = ", ".join(sorted(tasks)) or "none"
            raise TektonSpecError(
                f"{where}: taskRef {ref.name!r} not found in the tasks folder (known: {known})"
            )
        return tasks[ref.name]
    name = _ref_name(ref, where)
    if name == GIT_CLONE:
        return GIT_CLONE_TASK
    if name in tasks:
        return tasks[name]
    raise UnsupportedTektonFeatureError(
        f"{where}: {ref.resolver} resolver task {name!r} has no local equivalent",
        fix="add the Task to tasks/ or run on a cluster (table in tools/modelpipe/local/tekton/resolvers.py)",
    )


def _git(source: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, check=True, text=False)
    except FileNotFoundError as err:
        raise LocalRunError("git-clone (local): git is not installed") from err
    except subprocess.CalledProcessError as err:
        message = err.stderr.decode(errors="replace").strip()
        raise LocalRunError(
            f"git-clone (local): {source} is not a git working tree ({message})",
            fix="run from a clone of the repository",
        ) from err
    return done.stdout.decode()


def _first(params: Mapping[str, ParamValue], *names: str, default: str = "") -> str:
    for name in names:
        value = params.get(name)
        if isinstance(value, str) and value:
            return value
    return default


def run_git_clone(ctx: BuiltinContext) -> None:
    """Copy the working tree into the ``output`` workspace and write git-clone's results.

    Raises:
        LocalRunError: The source is not a git working tree, or the destination escapes the workspace.
    """
    output = ctx.workspaces.get("output")
    if output is None:
        raise LocalRunError("git-clone (local): workspace output is not bound")
    subdirectory = _first(ctx.params, "SUBDIRECTORY", "subdirectory")
    dest = (output / subdirectory).resolve()
    if not dest.is_relative_to(output.resolve()):
        raise LocalRunError(f"git-clone (local): subdirectory {subdirectory!r} leaves the output workspace")
    if _first(ctx.params, "DELETE_EXISTING", "deleteExisting", default="true") == "true" and dest.exists():
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    asked = _first(ctx.params, "URL", "url") or "-"
    revision = _first(ctx.params, "REVISION", "revision") or "-"
    ctx.log(
        f"local equivalent of git-clone: copying the working tree {ctx.source_dir} "
        f"(asked: {asked} @ {revision})"
    )
    names = [
        n
        for n in _git(ctx.source_dir, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split(
            "\0"
        )
        if n
    ]
    copied = 0
    for name in names:
        src = ctx.source_dir / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree but still in the index
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
        copied += 1
    commit = _git(ctx.source_dir, "rev-parse", "HEAD").strip()
    date = _git(ctx.source_dir, "log", "-1", "--format=%ct").strip()
    if _git(ctx.source_dir, "status", "--porcelain").strip():
        ctx.log("the working tree has uncommitted changes; they are included")
    ctx.log(f"copied {copied} files into {dest} (commit {commit})")
    url = ctx.source_dir.resolve().as_uri()
    ctx.results_dir.mkdir(parents=True, exist_ok=True)
    for names_, value in (
        (("commit", "COMMIT"), commit),
        (("url", "URL"), url),
        (("committer-date", "COMMITTER_DATE"), date),
    ):
        for result in names_:
            (ctx.results_dir / result).write_text(value, encoding="utf-8")


BUILTINS: dict[str, Callable[[BuiltinContext], None]] = {GIT_CLONE: run_git_clone}
