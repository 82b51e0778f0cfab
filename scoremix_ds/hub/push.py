"""Publishing a local folder to a Hub repository and tagging the exact commit pushed: ONE code path for datasets
(``push_dataset``, here) and trained models (``push_model`` in ``push_model.py``).

The order is what keeps a version honest (:func:`publish`; the caller has already verified the folder, so nothing
touches the network until it is known to be complete):

1. create the repository (``exist_ok``) and read its refs; stage the files (a staged file that contains the token
   is refused); an existing tag is refused BEFORE anything is uploaded, unless ``force_tag`` (or the tag already
   holds exactly the staged files: then there is nothing to do);
2. ``upload_folder`` of the staged files, deleting remote files matching the publication's ``stale`` patterns that
   this push does not have in the same commit (for a dataset: shards under ``data/``); retried as a whole on 5xx
   and connection errors. The client already retries its own preupload and LFS requests (``http_backoff``) but,
   by design, not the commit POST (a commit whose answer was lost would be made twice); this step's retry is safe
   because the client skips files the Hub already holds and makes no commit for identical content, so a retry (or
   a re-run after a crash) uploads only what is missing and a commit whose answer was lost is not repeated;
3. only after a successful upload, the tag is created on the commit that upload returned.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi
from huggingface_hub.errors import RepositoryNotFoundError

from ..dataset.manifest import MANIFEST, Manifest, file_sha256
from ..core.errors import ConfigError, ScoreMixError
from ..core.hub_client import (
    HubError,
    check_ref_name,
    check_repo_id,
    describe,
    hub_errors,
    is_hub_failure,
    is_retryable,
    make_api,
    map_error,
    resolve_token,
)
from .stage import staged
from .folder_check import verify_dataset

logger = logging.getLogger(__name__)

REPO_TYPE = "dataset"
STALE = ["data/*"]  # remote files under data/ that this push does not overwrite are deleted in the same commit
TOKEN_SCAN_BYTES = 1 << 20  # staged files up to this size are checked for the token (cards, configs, manifests)


@dataclass(frozen=True)
class RepoPushConfig:
    """Where and how a folder is published; shared by :class:`PushConfig` and ``ModelPushConfig``."""

    folder: str | Path  # the verified local folder to publish
    repo_id: str  # ORG/NAME
    tag: str | None = None  # version tag, created on the pushed commit; an existing one is never moved...
    force_tag: bool = False  # ...unless asked: then it is moved to this push
    revision: str | None = None  # branch to push to (created from main when missing); None = main
    create_pr: bool = False  # open a pull request against main instead of committing to it
    private: bool = False  # applies when the repository is created; an existing one keeps its visibility
    commit_message: str | None = None
    token: str | None = field(default=None, repr=False)  # None: HF_TOKEN, then the cached login
    attempts: int = 3  # whole-upload attempts on 5xx / connection errors (the client also retries LFS parts)
    backoff_s: float = 1.0  # wait before attempt k+1: backoff_s * 2**(k-1)

    def __post_init__(self) -> None:
        check_repo_id(self.repo_id)
        if self.tag is not None:
            check_ref_name(self.tag, "tag")
        if self.revision is not None and not _is_pr_ref(self.revision):
            check_ref_name(self.revision, "revision")
        if self.force_tag and not self.tag:
            raise ConfigError("force_tag needs a tag", hint="give a `tag` such as vX.Y.Z, or drop `force_tag`",
                              fields=("force_tag", "tag"))
        if self.create_pr and self.revision not in (None, "main"):
            raise ConfigError("create_pr opens a pull request against main and cannot take a revision",
                              hint="drop the `revision`, or push to the branch without `create_pr`",
                              fields=("create_pr", "revision"))
        if self.create_pr and self.tag:
            raise ConfigError("tag cannot be combined with create_pr: a version must point at a commit of a branch, "
                              "not of an unmerged pull request",
                              hint="merge the pull request, then push with the tag on main (it makes no new commit)",
                              fields=("tag", "create_pr"))
        if self.attempts < 1 or self.backoff_s < 0:
            raise ConfigError("attempts must be >= 1 and backoff_s >= 0", hint="use the defaults")

    @property
    def branch(self) -> str:
        return self.revision or "main"


@dataclass(frozen=True)
class PushConfig(RepoPushConfig):
    """Publish a finished ``scoremix-ds build`` output folder (``folder``) to a Hub dataset repository."""


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    commit_sha: str  # the commit that holds the pushed files (the tag points here)
    tag: str | None  # the tag now on commit_sha, if one was asked for
    url: str  # the repository's page
    pr_url: str | None  # the pull request opened by create_pr (None when there was nothing to propose)
    created_commit: bool  # False when the Hub already held exactly this content


@dataclass(frozen=True)
class Publication:
    """What :func:`publish` pushes: everything that differs between a dataset and a model."""

    repo_type: str  # "dataset" | "model"
    noun: str  # "dataset" / "model", in messages
    stage: Callable[[str | None], AbstractContextManager[Path]]  # revision named in the card -> staged folder
    message: str  # commit title
    stale: tuple[str, ...]  # remote paths (fnmatch patterns) that a push replaces as a set: missing ones are deleted
    versions_hint: str  # how to see the tags of a repository, for the hint of a lost tag race


def _is_pr_ref(revision: str) -> bool:
    parts = revision.split("/")
    return len(parts) == 3 and parts[:2] == ["refs", "pr"] and parts[2].isdigit()


def _git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _holds(api: HfApi, repo_id: str, commit: str, stage: Path, what: Publication) -> bool:
    """Does ``commit`` hold exactly the staged files (and no other file matching ``what.stale``)?"""
    info = api.repo_info(repo_id, repo_type=what.repo_type, revision=commit, files_metadata=True)
    remote = {s.rfilename: s for s in info.siblings or []}
    local = {p.relative_to(stage).as_posix(): p for p in stage.rglob("*") if p.is_file()}
    managed = {p for p in remote if any(fnmatch.fnmatch(p, pattern) for pattern in what.stale)}
    if managed - set(local):
        return False
    for rel, path in local.items():
        sibling = remote.get(rel)
        if sibling is None:
            return False
        if sibling.lfs is not None:
            if sibling.lfs.sha256 != file_sha256(path):
                return False
        elif sibling.blob_id != _git_blob_sha1(path):
            return False
    return True


def _refuse_token_in(stage: Path, token: str) -> None:
    """A staged file (card, config, manifest...) must never carry the token: refuse before anything is uploaded."""
    needle = token.encode()
    for path in sorted(stage.rglob("*")):
        if path.is_file() and path.stat().st_size <= TOKEN_SCAN_BYTES and needle in path.read_bytes():
            raise ConfigError(f"{path.relative_to(stage).as_posix()} contains the Hub token; refusing to publish it",
                              hint="remove the token from that file (give it as token or HF_TOKEN only)", field="token")


def _upload(api: HfApi, config: RepoPushConfig, stage: Path, what: Publication, message: str, token: str) -> CommitInfo:
    """``upload_folder`` with bounded retries of the whole step (the client resumes: finished files are skipped)."""
    for attempt in range(1, config.attempts + 1):
        try:
            return api.upload_folder(
                repo_id=config.repo_id, repo_type=what.repo_type, folder_path=stage, commit_message=message,
                revision=None if config.create_pr else config.branch, create_pr=config.create_pr or None,
                delete_patterns=list(what.stale),
            )
        except ScoreMixError:
            raise
        except Exception as exc:
            if attempt < config.attempts and is_retryable(exc):
                wait = config.backoff_s * 2 ** (attempt - 1)
                logger.warning("upload to %s failed (%s); retrying in %.0f s (attempt %d of %d)",
                               config.repo_id, describe(exc, token)[1], wait, attempt + 1, config.attempts)
                time.sleep(wait)
                continue
            if not is_hub_failure(exc):
                raise
            raise map_error(exc, config.repo_id, f"uploading to {config.repo_id}", token, attempts=attempt) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _tag(api: HfApi, config: RepoPushConfig, what: Publication, commit: str, old: str | None, token: str) -> None:
    """Put ``config.tag`` on ``commit`` (moving it from ``old`` only under ``force_tag``)."""
    tag, repo = config.tag, config.repo_id
    if old == commit:
        return
    try:
        with hub_errors(repo, f"tagging commit {commit[:8]} as {tag}", token):
            if old is not None:
                logger.warning("moving tag %s of %s from %s to %s (--force-tag)", tag, repo, old[:8], commit[:8])
                api.delete_tag(repo, tag=tag, repo_type=what.repo_type)
            api.create_tag(repo, tag=tag, revision=commit, repo_type=what.repo_type)
    except HubError as exc:
        if exc.status == 409:
            raise HubError(f"tag {tag} was created in {repo} by someone else while pushing; it was not moved",
                           hint=f"{what.versions_hint}; choose a new tag", field="tag") from exc
        raise HubError(f"pushed commit {commit[:8]} to {repo}, but tagging it {tag} failed: {exc.message}",
                       hint="re-run the same command: nothing is uploaded again and the tag goes on that commit") from exc


def preflight(config: RepoPushConfig, repo_type: str, same_content: Callable[[HfApi, str], bool] | None = None,
              can_force: bool = True) -> None:
    """Everything about a later push that can be checked BEFORE hours of sampling or training, in one line each: a
    token exists, the Hub accepts it, it can write, and the tag (unless ``force_tag``) is absent. A tag that exists is
    accepted only when ``same_content(api, commit)`` says that commit already holds what this run will make (a re-run
    of a pushed build: the push then makes no commit); otherwise the run would end in a refused push. ``can_force``:
    whether the command offers ``force_tag`` (the refusal's hint names it only then)."""
    token = resolve_token(config.token)
    api = make_api(token)
    repo = config.repo_id
    with hub_errors(repo, "checking the token", token):
        who = api.whoami()
    role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise ConfigError(f"the Hub token of {who.get('name', 'this account')} is read-only; pushing to {repo} needs "
                          "write access", hint="give a token with write access", field="token")
    if not config.tag or config.force_tag:
        return
    with hub_errors(repo, f"reading the tags of {repo}", token, write=False):
        try:
            refs = api.list_repo_refs(repo, repo_type=repo_type)
        except RepositoryNotFoundError:
            return  # a new repository: created by the push
    old = {r.name: r.target_commit for r in refs.tags}.get(config.tag)
    if old is not None and not (same_content is not None and same_content(api, old)):
        raise ConfigError(f"tag {config.tag} already exists in {repo} (commit {old[:8]}) and tags are never moved; "
                          "refused before anything is made",
                          hint="choose a new `tag`, or set `force_tag` to move it" if can_force else "choose a new `tag`",
                          fields=("tag", "force_tag") if can_force else ("tag",))


def remote_build_fingerprint(repo_id: str, fingerprint: str) -> Callable[[HfApi, str], bool]:
    """``same_content`` for a build: the commit's ``manifest.json`` has this build's fingerprint (same rows)."""
    def same(api: HfApi, commit: str) -> bool:
        try:
            path = api.hf_hub_download(repo_id, MANIFEST, repo_type=REPO_TYPE, revision=commit)
            return json.loads(Path(path).read_text(encoding="utf-8")).get("fingerprint") == fingerprint
        except Exception:  # no manifest or not readable there: not this build
            return False
    return same


def publish(config: RepoPushConfig, what: Publication) -> PushResult:
    """Push the files ``what.stage`` stages for ``config.folder`` to ``config.repo_id``; tag that commit.

    The caller verifies the folder first. Steps, refusals and retries: see the module docstring.
    """
    token = resolve_token(config.token)
    api = make_api(token)
    repo = config.repo_id
    with hub_errors(repo, f"creating {repo}", token):
        url = str(api.create_repo(repo, repo_type=what.repo_type, private=config.private or None, exist_ok=True))
        if config.private and not api.repo_info(repo, repo_type=what.repo_type).private:
            logger.warning("%s already exists and is public; --private does not change an existing repository", repo)
        refs = api.list_repo_refs(repo, repo_type=what.repo_type, include_pull_requests=True)
    heads = {r.name: r.target_commit for r in refs.branches}
    heads.update({r.ref: r.target_commit for r in refs.pull_requests or []})
    old = {r.name: r.target_commit for r in refs.tags}.get(config.tag) if config.tag else None
    pinned = config.tag or (None if config.create_pr or config.branch == "main" else config.branch)

    with what.stage(pinned) as stage:
        _refuse_token_in(stage, token)
        if old is not None and not config.force_tag:
            with hub_errors(repo, f"reading tag {config.tag}", token, write=False):
                same = _holds(api, repo, old, stage, what)
            if same:
                logger.info("tag %s of %s already holds exactly this %s; nothing to push", config.tag, repo, what.noun)
                return PushResult(repo, old, config.tag, url, None, created_commit=False)
            raise ConfigError(f"tag {config.tag} already exists in {repo} (commit {old[:8]}) with other content; "
                              "tags are never moved", hint=f"choose a new `tag`, or set `force_tag` to move {config.tag}",
                              fields=("tag", "force_tag"))
        target = "main" if config.create_pr else config.branch
        if target not in heads:
            if _is_pr_ref(target):
                raise ConfigError(f"revision {target} is not an open pull request of {repo}",
                                  hint="set `create_pr` to open one, or give a branch as the `revision`",
                                  fields=("revision", "create_pr"))
            with hub_errors(repo, f"creating branch {target}", token):
                api.create_branch(repo, branch=target, repo_type=what.repo_type, exist_ok=True)
            heads[target] = heads.get("main", "")
        n_files = sum(1 for p in stage.rglob("*") if p.is_file())
        logger.info("uploading %d files to %s (%s)", n_files, repo, "new pull request" if config.create_pr else target)
        info = _upload(api, config, stage, what, config.commit_message or what.message, token)

    created = info.pr_url is not None if config.create_pr else info.oid != heads[target]
    if config.tag:
        _tag(api, config, what, info.oid, old, token)
    return PushResult(repo, info.oid, config.tag, url, info.pr_url if config.create_pr else None, created)


def _default_message(manifest: Manifest, config: RepoPushConfig) -> str:
    strategy = manifest.config.get("strategy", "?")
    return f"scoremix-ds: {strategy} build {manifest.fingerprint}" + (f" ({config.tag})" if config.tag else "")


def push_dataset(config: PushConfig) -> PushResult:
    """Publish ``config.folder`` to ``config.repo_id``; tag the pushed commit with ``config.tag``.

    >>> push_dataset(PushConfig("scoremix-out", "my-org/scoremix-faces", tag="v1.0.0"))  # doctest: +SKIP
    PushResult(repo_id='my-org/scoremix-faces', commit_sha='3f1c...', tag='v1.0.0', ...)
    """
    folder = Path(config.folder)
    manifest = verify_dataset(folder)
    return publish(config, Publication(
        repo_type=REPO_TYPE, noun="dataset",
        stage=lambda revision: staged(folder, manifest, config.repo_id, revision),
        message=_default_message(manifest, config), stale=tuple(STALE),
        versions_hint=f"check it with `scoremix-ds versions {config.repo_id}`",
    ))
