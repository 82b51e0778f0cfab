"""LoopbackHub: a loopback server that speaks enough of the Hugging Face Hub HTTP API for the REAL
``huggingface_hub`` and ``datasets`` clients to create repositories, push, tag, and load datasets and models, so
tests can exercise publishing without network. Standard library only.

Point the clients at it with environment variables set BEFORE they are imported (``huggingface_hub`` reads
``HF_ENDPOINT`` at import time): see :meth:`LoopbackHub.client_env`. Xet must be disabled
(``HF_HUB_DISABLE_XET=1``): the server speaks the legacy git-LFS upload protocol, not Xet.

What it implements (``{t}`` is ``models|datasets|spaces|kernels``; ``{p}`` is the URL prefix ``""`` for models,
``datasets/`` etc.; ``{rev}`` is URL-quoted or a bare ``refs/pr/N``-style ref):

- ``GET /api/whoami-v2``; ``POST /api/repos/create`` (409 when present); ``DELETE /api/repos/delete``;
  ``POST /api/validate-yaml`` (checks that the YAML front matter of a README is closed).
- ``GET /api/{t}/{repo}`` and ``GET /api/{t}/{repo}/revision/{rev}`` (sha, siblings, with sizes and LFS
  info when ``blobs=true``); ``GET .../refs`` (``include_prs=1``); ``POST|DELETE .../branch/{b}``;
  ``POST .../tag/{rev}``, ``DELETE .../tag/{tag}``.
- Uploads: ``POST .../preupload/{rev}`` (upload mode from size, binary sample and ``.gitattributes``;
  ``.gitignore``; the remote oid so the client can skip unchanged files); the LFS batch API
  ``POST /{p}{repo}.git/info/lfs/objects/batch`` handing out per-object ``PUT /_lfs/upload/{ticket}`` URLs
  (no auth, like a presigned URL; sha256 and size are checked; objects already stored get no actions) and
  ``POST /_lfs/verify/...``; NDJSON ``POST .../commit/{rev}`` with ``file`` / ``lfsFile`` / ``deletedFile`` /
  ``deletedFolder`` lines, 412 on a stale ``parentCommit``, ``create_pr=1`` opening ``refs/pr/N``.
- Reads: ``GET .../tree/{rev}[/path]`` (``recursive``, ``expand`` adds ``lastCommit``; paginated with a
  ``Link: <...>; rel="next"`` header every ``page_size`` entries), ``POST .../paths-info/{rev}`` (form or
  JSON), ``GET .../commits/{rev}`` (paginated the same way), ``HEAD|GET /{p}{repo}/resolve/{rev}/{path}``
  with ``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``/``X-Linked-Size`` for LFS files, and single-range
  ``Range`` requests (206 / 416).
- Errors as the Hub sends them: 404 with ``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound``,
  401 for a missing or unknown token on writes (and an unknown token on any request), 403 for a read-only
  token on writes, ``X-Error-Message`` on every error. Private repos are invisible (404) without a valid
  token. Request bodies (Content-Length or chunked) are always drained, so keep-alive connections stay sane.
- Fault injection: :meth:`LoopbackHub.fail_next` makes the next N requests matching a method and a path
  regex answer a status, drop the connection mid-request, or truncate the response body mid-way.

Model repositories are served at the same paths without the ``datasets/`` segment (``GET /api/models/{repo}``,
``POST /api/models/{repo}/commit/{rev}``, ``/{repo}/resolve/{rev}/{path}``, ``/{repo}.git/info/lfs/objects/batch``,
``POST /api/repos/create`` with ``type`` ``"model"`` or none): a ``save_pretrained`` folder pushed with
``upload_folder`` loads back with ``hf_hub_download`` / ``from_pretrained`` (``tests/test_push_model.py``). The
introspection helpers below take ``repo_type="model"`` for them.

What it does NOT implement: Xet storage, LFS multipart transfers, discussions / PR comments / merges
(``create_pull_request`` and the Xet upload pipeline's PR path), repo settings, moves, collections, search
and listing of repos, gated repos, organisations and per-namespace permissions (any write token may write
any repository), the dataset viewer (``datasets-server``) and ``refs/convert/parquet``, rate limits, and
persistence (everything lives in memory and dies with the server). Repository ids are always
``namespace/name`` (``create_repo`` without a namespace uses the token's user).

Layout: this file holds the public API (:class:`LoopbackHub`); ``_hub_http.py`` the request handler (routing,
auth, JSON shapes); ``_hub_store.py`` the storage (commits, refs, LFS objects, upload modes).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Iterable, Mapping

from scoremix_ds.testing._hub_http import _Handler
from scoremix_ds.testing._hub_store import Commit, ErrorResponse, HubStore

__all__ = ["LoopbackHub", "ErrorResponse", "Commit", "RequestRecord"]


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered (``status`` is None when the connection was dropped)."""

    method: str
    path: str
    status: int | None


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern
    action: int | str
    times: int


class LoopbackHub:
    """A Hub-compatible HTTP server on a loopback port, backed by an in-memory git-like store.

    >>> with LoopbackHub() as hub:                     # doctest: +SKIP
    ...     env = hub.client_env(hf_home=tmp_path)     # pass to a subprocess that imports huggingface_hub
    ...     hub.fail_next("PUT", r"^/_lfs/upload/", status=500)
    ...     hub.commits("org/ds")                      # newest first
    """

    WRITE_TOKEN = "hf_loopback_write_token"
    READ_TOKEN = "hf_loopback_read_token"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tokens: Mapping[str, bool] | None = None,
                 user: str = "loopback-user", page_size: int = 1000):
        """``tokens`` maps token -> can write; None gives ``{WRITE_TOKEN: True, READ_TOKEN: False}``.
        ``page_size`` is the number of entries per page of ``tree`` / ``commits`` listings."""
        self.host, self.port = host, port
        self.user = user
        self.page_size = page_size
        self.store = HubStore()
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[bool, str]] = {}
        if tokens is None:
            tokens = {self.WRITE_TOKEN: True, self.READ_TOKEN: False}
        for token, write in tokens.items():
            self.add_token(token, write=write)
        self._faults: list[_Fault] = []
        self._tickets: dict[str, tuple[tuple[str, str], str, int]] = {}
        self.requests: list[RequestRecord] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "LoopbackHub":
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, self.port), _Handler)
        server.daemon_threads = True
        server.hub = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"loopback-hub:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> "LoopbackHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("LoopbackHub is not started: call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    def client_env(self, hf_home: str | None = None, token: str | None = None) -> dict[str, str]:
        """Environment variables that point ``huggingface_hub`` / ``datasets`` at this server."""
        env = {
            "HF_ENDPOINT": self.endpoint,
            "HF_TOKEN": token if token is not None else self.WRITE_TOKEN,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        }
        if hf_home is not None:
            env["HF_HOME"] = str(hf_home)
        return env

    # ------------------------------------------------------------------ configuration

    def add_token(self, token: str, write: bool = True, user: str | None = None) -> None:
        """Accept ``token`` (a write token unless ``write=False``) for ``user`` (default: the hub's user)."""
        with self._lock:
            self._tokens[token] = (write, user or self.user)

    def fail_next(self, method: str, path_regex: str, status: int | str = 500, times: int = 1) -> None:
        """Make the next ``times`` requests whose method is ``method`` (``"*"`` for any) and whose path
        (query string included) matches ``path_regex`` (``re.search``) fail.

        ``status``: an HTTP status to answer instead of handling the request (the body is drained first);
        ``"drop"``: read part of the request body, then close the connection without any response;
        ``"truncate"``: handle the request but close the connection halfway through the response body.
        """
        if not (isinstance(status, int) or status in ("drop", "truncate")):
            raise ValueError(f"status must be an int, 'drop' or 'truncate', not {status!r}")
        with self._lock:
            self._faults.append(_Fault(method.upper(), re.compile(path_regex), status, times))

    def pending_faults(self) -> int:
        """How many injected failures have not fired yet."""
        with self._lock:
            return sum(f.times for f in self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> int | str | None:
        with self._lock:
            for fault in self._faults:
                if fault.method in (method, "*") and fault.pattern.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault.action
        return None

    def _record(self, method: str, path: str, status: int | None) -> None:
        with self._lock:
            self.requests.append(RequestRecord(method, path, status))

    # ------------------------------------------------------------------ introspection for tests

    def create_repo(self, repo_id: str, repo_type: str = "dataset", private: bool = False) -> None:
        """Create a repository directly (no HTTP), with the Hub's initial ``.gitattributes`` commit."""
        self.store.create_repo(repo_type, repo_id, private=private, author=repo_id.split("/")[0])

    def seed(self, repo_id: str, files: Mapping[str, bytes], message: str = "seed files",
             repo_type: str = "dataset", branch: str = "main") -> str:
        """Commit ``files`` straight into the store (creating the repo if needed); returns the commit sha.

        Files go through LFS exactly when ``preupload`` would send them there.
        """
        store = self.store
        if not self.repo_exists(repo_id, repo_type):
            self.create_repo(repo_id, repo_type)
        repo = store.get_repo(repo_type, repo_id)
        operations = []
        for path, data in files.items():
            if store.upload_mode(repo, branch, path, len(data), data[:512]) == "lfs":
                oid = hashlib.sha256(data).hexdigest()
                store.store_lfs_object(repo, oid, data)
                operations.append({"key": "lfsFile", "value": {"path": path, "oid": oid, "size": len(data)}})
            else:
                content = base64.b64encode(data).decode()
                operations.append({"key": "file", "value": {"path": path, "content": content, "encoding": "base64"}})
        commit, _ = store.commit(repo, branch, operations, title=message, description="",
                                 author=repo_id.split("/")[0])
        return commit.sha

    def repo_exists(self, repo_id: str, repo_type: str = "dataset") -> bool:
        return (repo_type, repo_id) in self.store.repos

    def commits(self, repo_id: str, repo_type: str = "dataset", revision: str = "main") -> list[Commit]:
        """Commits reachable from ``revision`` (first parents), newest first."""
        store = self.store
        return store.history(store.get_repo(repo_type, repo_id), revision)

    def refs(self, repo_id: str, repo_type: str = "dataset") -> dict[str, dict]:
        """``{"branches": {name: sha}, "tags": {name: sha}, "pulls": {"refs/pr/N": sha}}``."""
        repo = self.store.get_repo(repo_type, repo_id)
        with self.store.lock:
            return {"branches": dict(repo.branches), "tags": dict(repo.tags),
                    "pulls": {f"refs/pr/{n}": sha for n, sha in repo.pulls.items()}}

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        """``{path: content}`` of the snapshot at ``revision``."""
        store = self.store
        return {p: b.data for p, b in store.snapshot(store.get_repo(repo_type, repo_id), revision).files.items()}

    def requests_matching(self, method: str, path_regex: str) -> list[RequestRecord]:
        pattern = re.compile(path_regex)
        with self._lock:
            return [r for r in self.requests if r.method == method.upper() and pattern.search(r.path)]


def serve_forever(port: int = 0, tokens: Iterable[str] = ()) -> None:  # pragma: no cover - manual debugging
    """Run a LoopbackHub in the foreground (``python -m scoremix_ds.testing.hub_server [port]``)."""
    hub = LoopbackHub(port=port, tokens={**{t: True for t in tokens}, LoopbackHub.WRITE_TOKEN: True,
                                         LoopbackHub.READ_TOKEN: False})
    with hub:
        print(f"LoopbackHub on {hub.endpoint} (write token: {hub.WRITE_TOKEN}, read token: {hub.READ_TOKEN})")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    import sys

    serve_forever(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
