"""A loopback stand-in for the few Hugging Face Hub calls `modelpipe download` makes.

Serves, from local folders:
- ``GET /api/models/{repo}[/revision/{rev}]``: model info with ``sha`` and ``siblings`` (size, blobId, lfs).
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``: file bytes with ``X-Repo-Commit``, ``ETag`` (sha256 for LFS
  files, git blob sha1 otherwise), ``Content-Length``, and byte ranges (``Range: bytes=N-``) for resumes.
Errors carry the ``X-Error-Code`` header huggingface_hub maps to its exceptions. Point huggingface_hub at
it with ``endpoint=hub.endpoint`` (or HF_ENDPOINT).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class HubRequest:
    """One request the fake saw (the Authorization value is kept so tests can check a token was sent)."""

    method: str
    path: str
    authorization: str | None
    range: str | None


# Suffixes the real Hub stores through git-LFS (their ETag is the content sha256).
LFS_SUFFIXES = frozenset({".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".h5", ".png"})


@dataclass
class FakeRepo:
    """One repository: a folder served at a commit sha, reachable by revision names."""

    repo_id: str
    folder: Path
    sha: str
    revisions: dict[str, str] = field(default_factory=dict)
    token: str | None = None

    def files(self) -> dict[str, Path]:
        return {
            p.relative_to(self.folder).as_posix(): p
            for p in sorted(self.folder.rglob("*"))
            if p.is_file() and ".cache" not in p.relative_to(self.folder).parts
        }


class _QuietServer(ThreadingHTTPServer):
    """Clients dropping connections (as resumable downloads do) is expected, not an error to print."""

    def handle_error(self, request: object, client_address: object) -> None:
        return


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


class FakeHub:
    """Threaded HTTP server on 127.0.0.1 serving registered repositories.

    Attributes:
        requests: Every request, in order.
        cut_after: ``{path: n}``: the next GET of that file sends only n bytes, then drops the connection.
        fail_status: ``{path: status}``: HEAD/GET of that file answer this status until removed.
    """

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[HubRequest] = []
        self.cut_after: dict[str, int] = {}
        self.fail_status: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_repo(
        self,
        repo_id: str,
        folder: Path,
        *,
        revisions: dict[str, str] | None = None,
        token: str | None = None,
    ) -> str:
        """Serve ``folder`` as ``repo_id``; returns its commit sha (also reachable as ``main``)."""
        digest = hashlib.sha1(repo_id.encode())
        for rel, path in FakeRepo(repo_id, folder, "").files().items():
            digest.update(rel.encode() + hashlib.sha256(path.read_bytes()).digest())
        sha = digest.hexdigest()
        names = {"main": sha, **(revisions or {})}
        self.repos[repo_id] = FakeRepo(repo_id, folder, sha, names, token)
        return sha

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "FakeHub is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def gets(self, suffix: str = "") -> list[str]:
        """Paths of GET requests for repo files ending with ``suffix``."""
        return [
            r.path
            for r in self.requests
            if r.method == "GET" and "/resolve/" in r.path and r.path.endswith(suffix)
        ]

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                hub._handle(self, head=False)

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- request handling ----------------------------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = unquote(urlsplit(req.path).path)
        auth = req.headers.get("Authorization")
        with self._lock:
            self.requests.append(HubRequest("HEAD" if head else "GET", path, auth, req.headers.get("Range")))
        if path.startswith("/api/models/"):
            self._model_info(req, path.removeprefix("/api/models/"), auth)
        elif "/resolve/" in path:
            self._resolve(req, path.lstrip("/"), auth, head=head)
        else:
            self._error(req, 404, None, "unknown route")

    def _repo(self, req: BaseHTTPRequestHandler, repo_id: str, auth: str | None) -> FakeRepo | None:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.token is not None and auth != f"Bearer {repo.token}"):
            self._error(req, 401, "RepoNotFound", "Repository not found")
            return None
        return repo

    def _model_info(self, req: BaseHTTPRequestHandler, rest: str, auth: str | None) -> None:
        repo_id, _, revision = rest.partition("/revision/")
        repo = self._repo(req, repo_id, auth)
        if repo is None:
            return
        sha = self._sha(repo, revision or "main")
        if sha is None:
            self._error(req, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        siblings = []
        for rel, file in repo.files().items():
            data = file.read_bytes()
            entry: dict[str, object] = {
                "rfilename": rel,
                "size": len(data),
                "blobId": _git_blob_sha1(data),
            }
            if file.suffix in LFS_SUFFIXES:
                entry["lfs"] = {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            siblings.append(entry)
        body = json.dumps(
            {
                "id": repo_id,
                "modelId": repo_id,
                "sha": sha,
                "private": False,
                "siblings": siblings,
            }
        )
        self._send(req, 200, body.encode(), {"Content-Type": "application/json"})

    def _sha(self, repo: FakeRepo, revision: str) -> str | None:
        if revision == repo.sha:
            return repo.sha
        return repo.revisions.get(revision)

    def _resolve(self, req: BaseHTTPRequestHandler, rest: str, auth: str | None, *, head: bool) -> None:
        before, _, after = rest.partition("/resolve/")
        repo = self._repo(req, before, auth)
        if repo is None:
            return
        revision, _, rel = after.partition("/")
        sha = self._sha(repo, revision)
        if sha is None:
            self._error(req, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        file = repo.files().get(rel)
        if rel in self.fail_status:
            self._error(req, self.fail_status[rel], None, "injected failure", commit=sha)
            return
        if file is None:
            self._error(req, 404, "EntryNotFound", f"{rel} does not exist", commit=sha)
            return
        data = file.read_bytes()
        etag = hashlib.sha256(data).hexdigest() if file.suffix in LFS_SUFFIXES else _git_blob_sha1(data)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        status, payload = 200, data
        range_header = req.headers.get("Range")
        if range_header and range_header.startswith("bytes=") and not head:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            status, payload = 206, data[start:]
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if head:
            self._send(req, 200, b"", {**headers, "Content-Length": str(len(data))}, head=True)
            return
        cut = self.cut_after.pop(rel, None)
        if cut is not None:
            self._send_cut(req, status, payload, headers, cut)
            return
        self._send(req, status, payload, headers)

    def _send(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str],
        *,
        head: bool = False,
    ) -> None:
        req.send_response(status)
        headers = {"Content-Length": str(len(body)), **headers}
        for name, value in headers.items():
            req.send_header(name, value)
        req.end_headers()
        if not head:
            req.wfile.write(body)

    def _send_cut(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str],
        cut: int,
    ) -> None:
        req.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            req.send_header(name, value)
        req.end_headers()
        req.wfile.write(body[:cut])
        req.wfile.flush()
        req.close_connection = True
        req.connection.shutdown(2)

    def _error(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        code: str | None,
        message: str,
        commit: str | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(req, status, json.dumps({"error": message}).encode(), headers, head=req.command == "HEAD")
