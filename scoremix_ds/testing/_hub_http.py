"""The HTTP side of :class:`~scoremix_ds.testing.hub_server.LoopbackHub`: request parsing, auth, routing and
the Hub's JSON shapes. Storage semantics live in ``_hub_store.py``; what is (not) implemented is listed in
``hub_server.py``'s docstring.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
import secrets
import socket
import traceback
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Mapping
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from scoremix_ds.testing._hub_store import Commit, ErrorResponse, Repo, now_iso

if TYPE_CHECKING:
    from scoremix_ds.testing.hub_server import LoopbackHub

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", "kernels": "kernel"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/", "kernel": "kernels/"}
_RESERVED_TOP = {"api", "_lfs", "datasets", "spaces", "kernels"}


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _split_rev(segments: list[str]) -> tuple[str, list[str]]:
    """Take a revision off the front of raw URL segments: ``refs%2Fpr%2F1`` or bare ``refs/pr/1``."""
    if not segments or not segments[0]:
        raise ErrorResponse(400, "Missing revision")
    first = unquote(segments[0])
    if first == "refs" and len(segments) >= 3:
        return "/".join(unquote(s) for s in segments[:3]), segments[3:]
    return first, segments[1:]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LoopbackHub/1"
    timeout = 60  # idle keep-alive connections are closed after this many seconds

    # ------------------------------------------------------------------ plumbing

    @property
    def hub(self) -> LoopbackHub:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args) -> None:  # quiet: tests read hub.requests instead
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _read_body(self, limit: int | None = None) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                total += size
                if limit is not None and total >= limit:
                    return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length if limit is None else min(length, limit)) if length else b""

    def _dispatch(self, method: str) -> None:
        self._status: int | None = None
        self._truncate = False
        fault = self.hub._take_fault(method, self.path)
        if fault == "drop":  # read about half of the body (if any), then hang up without answering
            if self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding"):
                self._read_body(limit=max(int(self.headers.get("Content-Length") or 2) // 2, 1))
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.hub._record(method, self.path, None)
            return
        self.body = self._read_body()
        try:
            if isinstance(fault, int):
                raise ErrorResponse(fault, f"Injected failure ({fault})")
            self._truncate = fault == "truncate"
            self._route(method)
        except ErrorResponse as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError):  # the client hung up while we answered
            self.close_connection = True
        except Exception as e:  # a bug in the server, not in the client: say so loudly
            traceback.print_exc()
            self._error(ErrorResponse(500, f"LoopbackHub internal error: {type(e).__name__}: {e}"))
        self.hub._record(method, self.path, self._status)

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: Mapping[str, str] | None = None) -> None:
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self._truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if self._truncate:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: Mapping[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self._send(status, json.dumps(obj).encode(), content_type, headers)

    def _error(self, e: ErrorResponse, extra: Mapping[str, str] | None = None) -> None:
        headers = {"X-Error-Message": e.message.replace("\n", " ")[:500]}
        if e.code:
            headers["X-Error-Code"] = e.code
        headers.update(extra or {})
        self._json({"error": e.message}, status=e.status, headers=headers)

    # ------------------------------------------------------------------ auth

    def _token(self) -> tuple[bool, str] | None:
        """(can_write, user) for a valid token, None when no token was sent; 401 on an unknown token."""
        auth = self.headers.get("Authorization", "")
        if not auth:
            return None
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else auth.strip()
        info = self.hub._tokens.get(token)
        if info is None:
            raise ErrorResponse(401, "Invalid credentials in Authorization header")
        return info

    def _require_write(self) -> str:
        info = self._token()
        if info is None:
            raise ErrorResponse(401, "You must be authenticated to perform this action (no token sent)")
        write, user = info
        if not write:
            raise ErrorResponse(403, "You don't have the rights to write with this token (read-only token)")
        return user

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        info = self._require_write() if write else self._token()
        repo = self.hub.store.get_repo(repo_type, repo_id)
        if repo.private and info is None:
            raise ErrorResponse(404, "Repository not found", "RepoNotFound")
        return repo

    # ------------------------------------------------------------------ routing

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        segs = url.path.lstrip("/").split("/")
        if segs[0] == "api":
            return self._route_api(method, segs[1:])
        if segs[0] == "_lfs":
            return self._route_lfs(method, segs[1:])
        repo_type = _TYPES.get(segs[0]) if segs[0] in _RESERVED_TOP else "model"
        if repo_type != "model":
            segs = segs[1:]
        if len(segs) >= 2 and segs[1].endswith(".git") and segs[2:] == ["info", "lfs", "objects", "batch"] \
                and method == "POST":
            return self._lfs_batch(repo_type, f"{unquote(segs[0])}/{unquote(segs[1][:-4])}")
        if len(segs) >= 4 and segs[2] == "resolve" and method in ("GET", "HEAD"):
            rev, rest = _split_rev(segs[3:])
            return self._resolve(repo_type, f"{unquote(segs[0])}/{unquote(segs[1])}", rev,
                                 "/".join(unquote(s) for s in rest))
        raise ErrorResponse(404, f"Not found: {method} {url.path}")

    def _q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def _body_json(self) -> dict:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise ErrorResponse(400, "Request body is not valid JSON")

    def _route_api(self, method: str, segs: list[str]) -> None:
        if segs == ["whoami-v2"] and method == "GET":
            return self._whoami()
        if segs == ["repos", "create"] and method == "POST":
            return self._create_repo()
        if segs == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo()
        if segs == ["validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if len(segs) < 3 or segs[0] not in _TYPES:
            raise ErrorResponse(404, f"Not found: {method} /api/{'/'.join(segs)}")
        repo_type, repo_id = _TYPES[segs[0]], f"{unquote(segs[1])}/{unquote(segs[2])}"
        action, rest = (segs[3], segs[4:]) if len(segs) > 3 else ("", [])
        routes = {
            ("GET", ""): lambda: self._repo_info(repo_type, repo_id, "main"),
            ("GET", "revision"): lambda: self._repo_info(repo_type, repo_id, _split_rev(rest)[0]),
            ("GET", "refs"): lambda: self._list_refs(repo_type, repo_id),
            ("POST", "branch"): lambda: self._create_branch(repo_type, repo_id, _split_rev(rest)[0]),
            ("DELETE", "branch"): lambda: self._delete_ref(repo_type, repo_id, _split_rev(rest)[0], "branch"),
            ("POST", "tag"): lambda: self._create_tag(repo_type, repo_id, _split_rev(rest)[0]),
            ("DELETE", "tag"): lambda: self._delete_ref(repo_type, repo_id, _split_rev(rest)[0], "tag"),
            ("POST", "preupload"): lambda: self._preupload(repo_type, repo_id, _split_rev(rest)[0]),
            ("POST", "commit"): lambda: self._commit(repo_type, repo_id, _split_rev(rest)[0]),
            ("GET", "tree"): lambda: self._tree(repo_type, repo_id, *_split_rev(rest)),
            ("POST", "paths-info"): lambda: self._paths_info(repo_type, repo_id, _split_rev(rest)[0]),
            ("GET", "commits"): lambda: self._commits(repo_type, repo_id, _split_rev(rest)[0]),
        }
        handler = routes.get((method, action))
        if handler is None:
            raise ErrorResponse(404, f"Not found: {method} /api/{'/'.join(segs)}")
        handler()

    # ------------------------------------------------------------------ account and repositories

    def _whoami(self) -> None:
        info = self._token()
        if info is None:
            raise ErrorResponse(401, "You must be authenticated to call whoami (no token sent)")
        write, user = info
        self._json({"type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24], "name": user,
                    "fullname": user, "email": None, "emailVerified": False, "isPro": False, "orgs": [],
                    "auth": {"type": "access_token",
                             "accessToken": {"displayName": "loopback", "role": "write" if write else "read"}}})

    def _create_repo(self) -> None:
        user = self._require_write()
        body = self._body_json()
        name, org = body.get("name"), body.get("organization") or user
        repo_type = body.get("type") or "model"
        if not name or repo_type not in _PREFIX:
            raise ErrorResponse(400, f"Invalid repo name or type: {name!r}, {repo_type!r}")
        repo_id = f"{org}/{name}"
        private = body.get("private") or body.get("visibility") == "private"
        url = f"{self.hub.endpoint}/{_PREFIX[repo_type]}{repo_id}"
        try:
            self.hub.store.create_repo(repo_type, repo_id, private=bool(private), author=org)
        except ErrorResponse as e:
            self._json({"error": e.message, "url": url}, status=e.status, headers={"X-Error-Message": e.message})
            return
        self._json({"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def _delete_repo(self) -> None:
        user = self._require_write()
        body = self._body_json()
        repo_id = f"{body.get('organization') or user}/{body.get('name')}"
        self.hub.store.delete_repo(body.get("type") or "model", repo_id)
        self._json({})

    def _validate_yaml(self) -> None:
        content = str(self._body_json().get("content", ""))
        lines = content.splitlines()
        if lines and lines[0].strip() == "---" and not any(line.strip() == "---" for line in lines[1:]):
            self._json({"errors": [{"message": "YAML front matter is not closed by a '---' line"}],
                        "warnings": []}, status=400)
            return
        self._json({"errors": [], "warnings": []})

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        store = self.hub.store
        repo = self._repo(repo_type, repo_id)
        commit = store.snapshot(repo, revision)
        blobs = _truthy(self._q("blobs"))
        siblings = []
        for path in sorted(commit.files):
            sibling: dict = {"rfilename": path}
            if blobs:
                blob = commit.files[path]
                sibling.update(size=blob.size, blobId=blob.oid)
                if blob.lfs:
                    sibling["lfs"] = {"size": blob.size, "sha256": blob.sha256, "pointerSize": blob.pointer_size}
            siblings.append(sibling)
        info = {"_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id,
                "author": repo_id.split("/")[0], "sha": commit.sha, "lastModified": now_iso(commit.date),
                "createdAt": now_iso(repo.created_at), "private": repo.private, "gated": False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
                "usedStorage": sum(b.size for b in commit.files.values())}
        if repo_type == "model":
            info["modelId"] = repo_id
        self._json(info)

    def _list_refs(self, repo_type: str, repo_id: str) -> None:
        repo = self._repo(repo_type, repo_id)
        with self.hub.store.lock:
            out = {
                "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": s}
                             for n, s in repo.branches.items()],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in repo.tags.items()],
                "converts": [],
            }
            if _truthy(self._q("include_prs")):
                out["pullRequests"] = [{"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": s}
                                       for n, s in repo.pulls.items()]
        self._json(out)

    def _create_branch(self, repo_type: str, repo_id: str, branch: str) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        self.hub.store.create_branch(repo, branch, self._body_json().get("startingPoint"))
        self._json({})

    def _create_tag(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        body = self._body_json()
        if not body.get("tag"):
            raise ErrorResponse(400, "Missing 'tag' in the request body")
        self.hub.store.create_tag(repo, str(body["tag"]), revision, body.get("message"))
        self._json({})

    def _delete_ref(self, repo_type: str, repo_id: str, name: str, kind: str) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        (self.hub.store.delete_branch if kind == "branch" else self.hub.store.delete_tag)(repo, name)
        self._json({})

    # ------------------------------------------------------------------ uploads

    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        store = self.hub.store
        repo = self._repo(repo_type, repo_id, write=True)
        head = store.snapshot(repo, revision)  # 404 RevisionNotFound when the target does not exist
        body = self._body_json()
        gitignore = body.get("gitIgnore")
        out = []
        for f in body.get("files", []):
            path, size = str(f.get("path", "")), int(f.get("size", 0))
            sample = base64.b64decode(f.get("sample", "") or "")
            entry = {"path": path, "uploadMode": store.upload_mode(repo, head.sha, path, size, sample),
                     "shouldIgnore": store.should_ignore(repo, head.sha, path, gitignore)}
            if path in head.files:
                entry["oid"] = head.files[path].preupload_oid
            out.append(entry)
        self._json({"files": out, "commitOid": head.sha})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        lfs_json = "application/vnd.git-lfs+json"
        repo = self._repo(repo_type, repo_id, write=True)
        body = self._body_json()
        if body.get("operation") != "upload":
            raise ErrorResponse(400, "Only the 'upload' operation of the LFS batch API is implemented")
        objects = []
        for obj in body.get("objects", []):
            oid, size = str(obj.get("oid", "")), obj.get("size")
            if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int) or size < 0:
                objects.append({"oid": oid, "size": size if isinstance(size, int) else -1,
                                "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            with self.hub.store.lock:
                present = len(repo.lfs_objects.get(oid, b"")) == size and oid in repo.lfs_objects
            if present:
                objects.append({"oid": oid, "size": size})
                continue
            ticket = secrets.token_urlsafe(16)
            with self.hub._lock:
                self.hub._tickets[ticket] = ((repo_type, repo_id), oid, size)
            base = self.hub.endpoint
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                "upload": {"href": f"{base}/_lfs/upload/{ticket}", "header": {}},
                "verify": {"href": f"{base}/_lfs/verify/{repo_type}/{quote(repo_id)}", "header": {}},
            }})
        self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, content_type=lfs_json)

    def _route_lfs(self, method: str, segs: list[str]) -> None:
        if method == "PUT" and len(segs) == 2 and segs[0] == "upload":
            with self.hub._lock:
                ticket = self.hub._tickets.get(segs[1])
            if ticket is None:
                raise ErrorResponse(403, "Unknown or expired upload URL")
            (repo_type, repo_id), oid, size = ticket
            if len(self.body) != size or hashlib.sha256(self.body).hexdigest() != oid:
                raise ErrorResponse(400, f"Uploaded content does not match oid {oid} / size {size} "
                                    f"(got {len(self.body)} bytes)")
            store = self.hub.store
            store.store_lfs_object(store.get_repo(repo_type, repo_id), oid, self.body)
            return self._send(200, b"", headers={"ETag": f'"{hashlib.md5(self.body).hexdigest()}"'})
        if method == "POST" and len(segs) == 4 and segs[0] == "verify":
            repo = self._repo(segs[1], f"{unquote(segs[2])}/{unquote(segs[3])}", write=True)
            body = self._body_json()
            with self.hub.store.lock:
                data = repo.lfs_objects.get(str(body.get("oid")))
            if data is None or len(data) != body.get("size"):
                raise ErrorResponse(404, f"LFS object {body.get('oid')} not found (or wrong size)")
            return self._json({"success": True}, content_type="application/vnd.git-lfs+json")
        raise ErrorResponse(404, f"Not found: {method} /_lfs/{'/'.join(segs)}")

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        user = self._require_write()
        repo = self._repo(repo_type, repo_id, write=True)
        try:
            lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        except ValueError:
            raise ErrorResponse(400, "Commit payload is not valid NDJSON")
        if not lines or lines[0].get("key") != "header":
            raise ErrorResponse(400, "The first line of the commit payload must be the header")
        header = lines[0].get("value") or {}
        if not header.get("summary"):
            raise ErrorResponse(400, "Commit summary (title) is required")
        create_pr = _truthy(self._q("create_pr"))
        commit, pr_num = self.hub.store.commit(
            repo, revision, lines[1:], title=str(header["summary"]), description=str(header.get("description", "")),
            author=user, parent_commit=header.get("parentCommit"), create_pr=create_pr)
        base = f"{self.hub.endpoint}/{_PREFIX[repo_type]}{repo_id}"
        self._json({"success": True, "commitOid": commit.sha, "commitUrl": f"{base}/commit/{commit.sha}",
                    "pullRequestUrl": f"{base}/discussions/{pr_num}" if pr_num is not None else None,
                    "hookOutput": ""})

    # ------------------------------------------------------------------ reads

    def _entry_json(self, repo: Repo, commit: Commit, kind: str, path: str, expand: bool) -> dict:
        store = self.hub.store
        if kind == "directory":
            entry = {"type": "directory", "oid": store.tree_oid(commit.files, path), "size": 0, "path": path}
        else:
            blob = commit.files[path]
            entry = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
            if blob.lfs:
                entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": blob.pointer_size}
        if expand:
            last = store.last_commit_touching(repo, commit.sha, path)
            entry["lastCommit"] = {"id": last.sha, "title": last.title, "date": now_iso(last.date)}
        return entry

    def _paginate(self, items: list, render, page_param: str) -> None:
        """Answer one page of ``items`` with a GitHub-style ``Link: <next>; rel="next"`` header."""
        page_size = self.hub.page_size
        try:
            start = int(self._q(page_param, "0")) * (page_size if page_param == "p" else 1)
        except ValueError:
            raise ErrorResponse(400, f"Invalid {page_param}")
        page = items[start:start + page_size]
        headers = {}
        if start + page_size < len(items):
            nxt = (start // page_size + 1) if page_param == "p" else start + page_size
            query = {k: v[0] for k, v in self.query.items() if k != page_param}
            query[page_param] = str(nxt)
            path = urlsplit(self.path).path
            headers["Link"] = f'<{self.hub.endpoint}{path}?{urlencode(query)}>; rel="next"'
        self._json([render(item) for item in page], headers=headers)

    def _tree(self, repo_type: str, repo_id: str, revision: str, rest: list[str]) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self.hub.store.snapshot(repo, revision)
        folder = "/".join(unquote(s) for s in rest).strip("/")
        entries = self.hub.store.entries(commit.files, folder, recursive=_truthy(self._q("recursive")))
        expand = _truthy(self._q("expand"))
        self._paginate(entries, lambda e: self._entry_json(repo, commit, e[0], e[1], expand), "cursor")

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self.hub.store.snapshot(repo, revision)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            body = self._body_json()
            paths, expand = body.get("paths", []), bool(body.get("expand"))
        else:
            form = parse_qs(self.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), _truthy((form.get("expand") or ["false"])[0])
        out = []
        for path in ([paths] if isinstance(paths, str) else paths):
            path = str(path).strip("/")
            if path in commit.files:
                out.append(self._entry_json(repo, commit, "file", path, expand))
            elif path and any(p.startswith(path + "/") for p in commit.files):
                out.append(self._entry_json(repo, commit, "directory", path, expand))
        self._json(out)

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id)
        history = self.hub.store.history(repo, revision)

        def render(commit: Commit) -> dict:
            out = commit.to_json()
            if "formatted" in self.query.get("expand[]", []):
                out["formatted"] = {"title": commit.title, "message": commit.message}
            return out

        self._paginate(history, render, "p")

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        store = self.hub.store
        repo = self._repo(repo_type, repo_id)
        commit = store.snapshot(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            error = ErrorResponse(404, f"Entry not found: {path}", "EntryNotFound")
            return self._error(error, extra={"X-Repo-Commit": commit.sha})
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{blob.etag}"', "Accept-Ranges": "bytes",
                   "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"'}
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(blob.size)})
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        data, size = blob.data, blob.size
        range_header = self.headers.get("Range")
        match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header or "")
        if match and (match[1] or match[2]):
            if match[1]:
                start = int(match[1])
                end = min(int(match[2]), size - 1) if match[2] else size - 1
            else:  # suffix range: the last N bytes
                start, end = max(size - int(match[2]), 0), size - 1
            if start >= size or end < start:
                return self._error(ErrorResponse(416, f"Range {range_header} not satisfiable (size {size})"),
                                   extra={"Content-Range": f"bytes */{size}", "X-Repo-Commit": commit.sha})
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return self._send(206, data[start:end + 1], content_type, headers)
        self._send(200, data, content_type, headers)
