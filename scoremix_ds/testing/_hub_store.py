"""In-memory, git-like storage behind :class:`~scoremix_ds.testing.hub_server.LoopbackHub`.

Every commit is an immutable snapshot ``{path: Blob}`` with a 40-hex sha, its parent(s), a title, a
description, an author and a date. Branches, tags and pull-request refs (``refs/pr/N``) map names to commit
shas. Branches move on commit; tags never move (they can only be deleted and re-created); a PR ref moves
when something is committed to it. LFS objects are kept per repository, keyed by their sha256, as soon as
they are uploaded (before any commit references them), as the real Hub does.

All public methods take the store's lock, so the HTTP handler threads may call them concurrently. Errors a
client should see are raised as :class:`ErrorResponse` carrying the HTTP status and the ``X-Error-Code``.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import json
import posixpath
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping

# Files at or above this size are stored through LFS whatever their name (the Hub's threshold).
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024

# The `.gitattributes` that the Hub writes in the first commit of a new repository (abridged).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
        "*.lz4", "*.mds", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot",
        "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors",
        "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst",
        "*tfevents*", "*.mp3", "*.ogg", "*.wav", "*.flac", "*.jpg", "*.jpeg", "*.png", "*.webp", "*.gif",
    )
).encode()

_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_SHORT_SHA = re.compile(r"[0-9a-f]{5,39}")


class ErrorResponse(Exception):
    """An error the server turns into an HTTP response (status, ``X-Error-Code``, message)."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (sha1 of ``"blob <size>\\0" + data``)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def now_iso(ts: float | None = None) -> str:
    """A date in the Hub's format, ``2024-05-01T12:00:00.000Z``."""
    ts = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


@dataclass(frozen=True)
class Blob:
    """File content plus the identifiers the clients expect (git oid, sha256, LFS pointer)."""

    data: bytes
    lfs: bool
    sha256: str
    oid: str  # git oid: of the content for a regular file, of the LFS pointer file for an LFS file
    pointer_size: int = 0

    @classmethod
    def make(cls, data: bytes, lfs: bool) -> "Blob":
        sha256 = hashlib.sha256(data).hexdigest()
        if not lfs:
            return cls(data=data, lfs=False, sha256=sha256, oid=git_blob_oid(data))
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()
        return cls(data=data, lfs=True, sha256=sha256, oid=git_blob_oid(pointer), pointer_size=len(pointer))

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def etag(self) -> str:
        """What ``resolve`` sends as the file's ETag: sha256 for LFS files, the git oid otherwise."""
        return self.sha256 if self.lfs else self.oid

    @property
    def preupload_oid(self) -> str:
        """What ``preupload`` reports as the remote oid (the client compares it with sha256 / git oid)."""
        return self.sha256 if self.lfs else self.oid


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    files: Mapping[str, Blob]
    title: str
    message: str
    author: str
    date: float

    def to_json(self) -> dict:
        return {
            "id": self.sha,
            "title": self.title,
            "message": self.message,
            "authors": [{"user": self.author, "avatar": None}],
            "date": now_iso(self.date),
            "parents": list(self.parents),
        }


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    author: str
    created_at: float
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    tag_messages: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, str] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)


def _pattern_matches(pattern: str, path: str) -> bool:
    """Good-enough gitattributes / gitignore matching: basename patterns, anchored paths, ``**``."""
    pattern = pattern.strip()
    if not pattern or pattern.startswith("#") or pattern.startswith("!"):
        return False
    if pattern.endswith("/"):  # a directory: everything under it
        pattern = pattern + "**"
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(posixpath.basename(path), pattern) or fnmatch.fnmatchcase(path, pattern)
    pattern = pattern.lstrip("/")
    if fnmatch.fnmatchcase(path, pattern):  # fnmatch's `*` crosses "/", so `a/**/*` matches deep paths too
        return True
    return pattern.endswith("/**") and path.startswith(pattern[:-3] + "/")


class HubStore:
    """Repositories, commits and refs, all in memory."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self._counter = itertools.count()

    # ------------------------------------------------------------------ repositories

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool = False, author: str = "user") -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise ErrorResponse(409, "You already created this dataset repo" if repo_type == "dataset"
                               else f"You already created this {repo_type} repo")
            repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, author=author, created_at=time.time())
            first = self._new_commit(repo, (), {".gitattributes": Blob.make(DEFAULT_GITATTRIBUTES, False)},
                                     "initial commit", "", author)
            repo.branches["main"] = first.sha
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            if self.repos.pop((repo_type, repo_id), None) is None:
                raise ErrorResponse(404, "Repository not found", "RepoNotFound")

    def get_repo(self, repo_type: str, repo_id: str) -> Repo:
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                raise ErrorResponse(404, "Repository not found", "RepoNotFound")
            return repo

    # ------------------------------------------------------------------ revisions

    def resolve(self, repo: Repo, revision: str) -> str:
        """A branch, tag, ``refs/heads|tags/X``, ``refs/pr/N`` or (short) commit sha -> the commit sha."""
        with self.lock:
            rev = revision
            if rev.startswith("refs/heads/") and rev[len("refs/heads/"):] in repo.branches:
                return repo.branches[rev[len("refs/heads/"):]]
            if rev.startswith("refs/tags/") and rev[len("refs/tags/"):] in repo.tags:
                return repo.tags[rev[len("refs/tags/"):]]
            if rev.startswith("refs/pr/") and rev[len("refs/pr/"):].isdigit():
                num = int(rev[len("refs/pr/"):])
                if num in repo.pulls:
                    return repo.pulls[num]
            if rev in repo.branches:
                return repo.branches[rev]
            if rev in repo.tags:
                return repo.tags[rev]
            if _COMMIT_SHA.fullmatch(rev) and rev in repo.commits:
                return rev
            if _SHORT_SHA.fullmatch(rev):
                matches = [sha for sha in repo.commits if sha.startswith(rev)]
                if len(matches) == 1:
                    return matches[0]
            raise ErrorResponse(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def snapshot(self, repo: Repo, revision: str) -> Commit:
        with self.lock:
            return repo.commits[self.resolve(repo, revision)]

    def history(self, repo: Repo, revision: str) -> list[Commit]:
        """Commits reachable from ``revision`` along first parents, newest first."""
        with self.lock:
            out, sha = [], self.resolve(repo, revision)
            while sha is not None:
                commit = repo.commits[sha]
                out.append(commit)
                sha = commit.parents[0] if commit.parents else None
            return out

    def last_commit_touching(self, repo: Repo, revision: str, path: str) -> Commit:
        """The newest commit on ``revision``'s history that changed ``path`` (file or folder)."""
        with self.lock:
            history = self.history(repo, revision)

            def view(commit: Commit) -> tuple:
                if path in commit.files:
                    return (commit.files[path].oid,)
                prefix = path + "/"
                return tuple(sorted((p, b.oid) for p, b in commit.files.items() if p.startswith(prefix)))

            for newer, older in zip(history, history[1:]):
                if view(newer) != view(older):
                    return newer
            return history[-1]

    # ------------------------------------------------------------------ refs

    def create_branch(self, repo: Repo, branch: str, starting_point: str | None) -> None:
        with self.lock:
            if branch in repo.branches:
                raise ErrorResponse(409, f"Branch {branch} already exists")
            if branch in repo.tags or branch.startswith("refs/"):
                raise ErrorResponse(409, f"Reference {branch} already exists or is invalid")
            repo.branches[branch] = self.resolve(repo, starting_point or "main")

    def delete_branch(self, repo: Repo, branch: str) -> None:
        with self.lock:
            if branch == "main":
                raise ErrorResponse(403, "Cannot delete the main branch")
            if repo.branches.pop(branch, None) is None:
                raise ErrorResponse(404, f"Branch {branch} not found", "RevisionNotFound")

    def create_tag(self, repo: Repo, tag: str, revision: str, message: str | None) -> None:
        with self.lock:
            if tag in repo.tags:
                raise ErrorResponse(409, f"Tag {tag} already exists")
            if not tag or tag.startswith("refs/") or tag in repo.branches:
                raise ErrorResponse(409, f"Reference {tag} already exists or is invalid")
            repo.tags[tag] = self.resolve(repo, revision)
            if message:
                repo.tag_messages[tag] = message

    def delete_tag(self, repo: Repo, tag: str) -> None:
        with self.lock:
            if repo.tags.pop(tag, None) is None:
                raise ErrorResponse(404, f"Tag {tag} not found", "RevisionNotFound")
            repo.tag_messages.pop(tag, None)

    def open_pull_request(self, repo: Repo, from_sha: str) -> int:
        with self.lock:
            num = max(repo.pulls, default=0) + 1
            repo.pulls[num] = from_sha
            return num

    # ------------------------------------------------------------------ uploads and commits

    def upload_mode(self, repo: Repo, revision: str, path: str, size: int, sample: bytes) -> str:
        """``"lfs"`` or ``"regular"``: big files, binary files and `.gitattributes` LFS patterns go to LFS."""
        with self.lock:
            if size >= LFS_SIZE_THRESHOLD or b"\x00" in sample:
                return "lfs"
            try:
                files = self.snapshot(repo, revision).files
            except ErrorResponse:
                files = {}
            attributes = files[".gitattributes"].data if ".gitattributes" in files else DEFAULT_GITATTRIBUTES
            for line in attributes.decode("utf-8", "replace").splitlines():
                parts = line.split()
                if len(parts) >= 2 and "filter=lfs" in parts[1:] and _pattern_matches(parts[0], path):
                    return "lfs"
            return "regular"

    def should_ignore(self, repo: Repo, revision: str, path: str, gitignore: str | None) -> bool:
        with self.lock:
            if gitignore is None:
                try:
                    files = self.snapshot(repo, revision).files
                except ErrorResponse:
                    files = {}
                gitignore = files[".gitignore"].data.decode("utf-8", "replace") if ".gitignore" in files else ""
            return any(_pattern_matches(line, path) for line in gitignore.splitlines())

    def store_lfs_object(self, repo: Repo, oid: str, data: bytes) -> None:
        with self.lock:
            repo.lfs_objects[oid] = data

    def commit(self, repo: Repo, revision: str, operations: list[dict], *, title: str, description: str,
               author: str, parent_commit: str | None = None, create_pr: bool = False) -> tuple[Commit, int | None]:
        """Apply NDJSON ``operations`` (``{"key": ..., "value": ...}``) on top of ``revision``.

        ``revision`` must be a branch (or ``refs/pr/N``). A ``parent_commit`` that is not the head gives 412.
        With ``create_pr`` a new ``refs/pr/N`` is opened from the head (or ``parent_commit``) and the commit
        lands there. Returns the new commit and the PR number (or None).
        """
        with self.lock:
            branch, pr_num = self._writable_ref(repo, revision)
            head = repo.pulls[pr_num] if pr_num is not None else repo.branches[branch]
            if parent_commit is not None:
                try:
                    parent = self.resolve(repo, parent_commit) if _SHORT_SHA.fullmatch(parent_commit) or \
                        _COMMIT_SHA.fullmatch(parent_commit) else None
                except ErrorResponse:
                    parent = None
                if create_pr and parent is None:
                    raise ErrorResponse(404, f"Invalid rev id: {parent_commit}", "RevisionNotFound")
                if create_pr:
                    head = parent or head
                elif parent != head:
                    raise ErrorResponse(412, "A commit has happened since. Please refresh and try again.")
            files = dict(repo.commits[head].files)
            for op in operations:
                self._apply(repo, files, op)
            commit = self._new_commit(repo, (head,), files, title, description, author)
            if create_pr:
                pr_num = self.open_pull_request(repo, commit.sha)
            elif pr_num is not None:
                repo.pulls[pr_num] = commit.sha
            else:
                repo.branches[branch] = commit.sha
            return commit, pr_num

    def _writable_ref(self, repo: Repo, revision: str) -> tuple[str | None, int | None]:
        if revision.startswith("refs/pr/") and revision[len("refs/pr/"):].isdigit():
            num = int(revision[len("refs/pr/"):])
            if num not in repo.pulls:
                raise ErrorResponse(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return None, num
        branch = revision[len("refs/heads/"):] if revision.startswith("refs/heads/") else revision
        if branch in repo.branches:
            return branch, None
        self.resolve(repo, revision)  # 404 RevisionNotFound if it does not exist at all
        raise ErrorResponse(400, f"Invalid rev id: {revision} is not a branch; commits can only be made to a branch")

    def _apply(self, repo: Repo, files: dict[str, Blob], op: dict) -> None:
        key, value = op.get("key"), op.get("value") or {}
        path = str(value.get("path", "")).lstrip("/")
        if key in ("file", "lfsFile"):
            if not path or path.endswith("/") or any(p in ("", ".", "..") for p in path.split("/")) or \
                    path == ".git" or path.startswith(".git/"):
                raise ErrorResponse(400, f"Invalid path: {path!r}")
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise ErrorResponse(400, f"Unsupported encoding {value.get('encoding')!r} for {path}")
            files[path] = Blob.make(base64.b64decode(value.get("content", "")), lfs=False)
        elif key == "lfsFile":
            oid = value.get("oid")
            data = repo.lfs_objects.get(oid)
            if data is None:
                raise ErrorResponse(422, f"Your push was rejected because an LFS pointer pointed to a file that does not "
                                    f"exist. For instance: {path} (oid {oid})")
            if value.get("size") is not None and int(value["size"]) != len(data):
                raise ErrorResponse(422, f"LFS object {oid} has size {len(data)}, not {value['size']} ({path})")
            files[path] = Blob.make(data, lfs=True)
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise ErrorResponse(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            prefix = path.rstrip("/") + "/"
            doomed = [p for p in files if p.startswith(prefix)]
            if not doomed:
                raise ErrorResponse(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in doomed:
                del files[p]
        else:
            raise ErrorResponse(400, f"Unknown commit operation key {key!r}")

    def _new_commit(self, repo: Repo, parents: tuple[str, ...], files: dict[str, Blob], title: str,
                    description: str, author: str) -> Commit:
        date = time.time()
        payload = json.dumps([list(parents), sorted((p, b.oid) for p, b in files.items()), title, description,
                              author, date, next(self._counter)])
        sha = hashlib.sha1(payload.encode()).hexdigest()
        commit = Commit(sha=sha, parents=parents, files=dict(files), title=title, message=description,
                        author=author, date=date)
        repo.commits[sha] = commit
        return commit

    # ------------------------------------------------------------------ tree listings

    @staticmethod
    def tree_oid(files: Mapping[str, Blob], folder: str) -> str:
        prefix = folder.rstrip("/") + "/" if folder else ""
        entries = sorted((p, b.oid) for p, b in files.items() if p.startswith(prefix))
        return hashlib.sha1(json.dumps(entries).encode()).hexdigest()

    def entries(self, files: Mapping[str, Blob], folder: str, recursive: bool) -> list[tuple[str, str]]:
        """``[(kind, path)]`` under ``folder`` (``""`` is the root), folders first, then files, sorted.

        404 EntryNotFound when ``folder`` is not a folder of the snapshot.
        """
        folder = folder.strip("/")
        prefix = folder + "/" if folder else ""
        below = [p for p in files if p.startswith(prefix)]
        if folder and not below:
            raise ErrorResponse(404, f"{folder} does not exist or is not a folder", "EntryNotFound")
        dirs, leaves = set(), set()
        for p in below:
            rest = p[len(prefix):].split("/")
            if recursive:
                for i in range(1, len(rest)):
                    dirs.add(prefix + "/".join(rest[:i]))
                leaves.add(p)
            elif len(rest) > 1:
                dirs.add(prefix + rest[0])
            else:
                leaves.add(p)
        return [("directory", d) for d in sorted(dirs)] + [("file", f) for f in sorted(leaves)]
