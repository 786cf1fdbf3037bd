"""A minimal Hugging Face Hub-compatible HTTP server on 127.0.0.1, for real round trips in tests.

No PyPI package serves the Hub API locally, so this stdlib server answers the calls `huggingface_hub` (and through
it transformers and datasets) makes to create repos, commit files, and list and download them. Repos live in memory;
every commit is a full snapshot, and a commit that changes nothing keeps the current revision (so pushes are
idempotent). Use it through `HF_ENDPOINT`:

    with HubServer() as hub:
        os.environ["HF_ENDPOINT"] = hub.url   # set before huggingface_hub is imported
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

__all__ = ["HubServer"]

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


@dataclass
class Repo:
    """One repository: branch name -> list of (commit sha, {path: bytes}) snapshots, newest last."""

    repo_id: str
    repo_type: str
    private: bool = False
    branches: dict[str, list[tuple[str, dict[str, bytes]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.branches.setdefault("main", [(_sha(f"{self.repo_type}/{self.repo_id}"), {})])

    def snapshot(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if revision in self.branches:
            return self.branches[revision][-1]
        for history in self.branches.values():
            for sha, files in history:
                if sha == revision:
                    return sha, files
        return None


def _sha(text: str | bytes) -> str:
    return hashlib.sha1(text.encode() if isinstance(text, str) else text).hexdigest()


def _file_entry(path: str, content: bytes) -> dict:
    return {"type": "file", "path": path, "size": len(content), "oid": _sha(b"blob %d\0" % len(content) + content)}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    # ------------------------------------------------------------------ helpers

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        body = b"" if head else json.dumps({"error": message}).encode()
        self._send(status, body, {"X-Error-Code": code, "X-Error-Message": message}, head=head)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _repo(self, kind: str, repo_id: str) -> Repo | None:
        return self.server.repos.get((REPO_TYPES.get(kind, "model"), repo_id))

    # ------------------------------------------------------------------ routes

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlparse(self.path)
        path = unquote(url.path)
        if path == "/api/repos/create":
            request = json.loads(self._body() or b"{}")
            repo_type = request.get("type") or "model"
            repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
            key = (repo_type, repo_id)
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            answer = {"url": f"{self.server.url}/{prefix}{repo_id}", "name": repo_id}
            with self.server.lock:
                if key in self.server.repos:  # as the Hub: 409 with the repo's url
                    return self._json(409, {**answer, "error": "You already created this repo"})
                self.server.repos[key] = Repo(repo_id, repo_type, bool(request.get("private")))
            return self._json(200, answer)
        if path == "/api/validate-yaml":
            return self._json(200, {"errors": [], "warnings": []})
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/(preupload|commit|paths-info|branch)/(.+)", path)
        if match is None:
            return self._error(404, "NotFound", f"no route for POST {path}")
        kind, repo_id, action, revision = match.groups()
        repo = self._repo(kind, repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        if action == "preupload":
            files = json.loads(self._body())["files"]
            upload = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            return self._json(200, {"files": upload})
        if action == "branch":
            self._body()
            with self.server.lock:
                if revision not in repo.branches:
                    repo.branches[revision] = [repo.branches["main"][-1]]
            return self._json(200, {})
        if action == "paths-info":
            form = parse_qs(self._body().decode())
            request_paths = form.get("paths", [])
            snapshot = repo.snapshot(revision)
            if snapshot is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            _, files = snapshot
            return self._json(200, [_file_entry(p, files[p]) for p in request_paths if p in files])
        return self._commit(repo, revision)

    def _commit(self, repo: Repo, revision: str) -> None:
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        with self.server.lock:
            history = repo.branches.setdefault(revision, [repo.branches["main"][-1]])
            parent_sha, parent_files = history[-1]
            files = dict(parent_files)
            for line in lines:
                value = line.get("value", {})
                if line["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif line["key"] in ("deletedFile", "deletedFolder"):
                    prefix = value["path"].rstrip("/")
                    for name in [n for n in files if n == prefix or n.startswith(prefix + "/")]:
                        del files[name]
                elif line["key"] == "lfsFile":
                    return self._error(400, "BadRequest", "this test Hub stores regular (inline) files only")
            if files != parent_files:
                digest = json.dumps({k: _sha(v) for k, v in sorted(files.items())}) + parent_sha
                history.append((_sha(digest), files))
            sha = history[-1][0]
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        url = f"{self.server.url}/{prefix}{repo.repo_id}/commit/{sha}"
        return self._json(200, {"commitUrl": url, "commitOid": sha, "success": True})

    def do_GET(self) -> None:  # noqa: N802
        self._get(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._get(head=True)

    def _get(self, head: bool) -> None:
        url = urlparse(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/tree/([^/]+)(?:/(.*))?", path)
        if match:
            kind, repo_id, revision, folder = match.groups()
            return self._tree(kind, repo_id, revision, folder or "", query.get("recursive", ["false"])[0] == "true")
        match = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)(?:/revision/(.+))?", path)
        if match:
            kind, repo_id, revision = match.groups()
            return self._info(kind, repo_id, revision or "main")
        match = re.fullmatch(r"/(datasets/|spaces/)?(.+?)/resolve/([^/]+)/(.+)", path)
        if match:
            kind, repo_id, revision, file_path = match.groups()
            return self._resolve((kind or "models/").rstrip("/") or "models", repo_id, revision, file_path, head)
        return self._error(404, "NotFound", f"no route for GET {path}", head=head)

    def _info(self, kind: str, repo_id: str, revision: str) -> None:
        repo = self._repo(kind, repo_id)
        snapshot = repo.snapshot(revision) if repo else None
        if snapshot is None:
            code = "RepoNotFound" if repo is None else "RevisionNotFound"
            return self._error(404, code, f"{repo_id}@{revision} not found")
        sha, files = snapshot
        return self._json(
            200,
            {
                "id": repo_id,
                "sha": sha,
                "private": repo.private,
                "siblings": [{"rfilename": name} for name in sorted(files)],
                "tags": [],
            },
        )

    def _tree(self, kind: str, repo_id: str, revision: str, folder: str, recursive: bool) -> None:
        repo = self._repo(kind, repo_id)
        snapshot = repo.snapshot(revision) if repo else None
        if snapshot is None:
            return self._error(404, "RevisionNotFound", f"{repo_id}@{revision} not found")
        _, files = snapshot
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        entries, folders = [], set()
        for name in sorted(files):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                folders.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
            entries.append(_file_entry(name, files[name]))
        entries += [{"type": "directory", "path": name, "oid": _sha(name), "size": 0} for name in sorted(folders)]
        return self._json(200, entries)

    def _resolve(self, kind: str, repo_id: str, revision: str, file_path: str, head: bool) -> None:
        repo = self._repo(kind, repo_id)
        snapshot = repo.snapshot(revision) if repo else None
        if snapshot is None:
            code = "RepoNotFound" if repo is None else "RevisionNotFound"
            return self._error(404, code, f"{repo_id}@{revision} not found", head=head)
        sha, files = snapshot
        if file_path not in files:
            return self._error(404, "EntryNotFound", f"{file_path} does not exist at {revision}", head=head)
        content = files[file_path]
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{_file_entry(file_path, content)["oid"]}"',
            "Content-Type": "application/octet-stream",
        }
        return self._send(200, content, headers, head=head)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    repos: dict[tuple[str, str], Repo]
    lock: threading.Lock
    url: str


class HubServer:
    """Context manager: starts the server on a free loopback port and stops it on exit."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.repos = {}
        self._server.lock = threading.Lock()
        self.url = self._server.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def repos(self) -> dict[tuple[str, str], Repo]:
        return self._server.repos

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
