"""How scoremix-ds talks to the Hub: the token, the repo id, and client exceptions turned into ONE line.

Every call into ``huggingface_hub`` runs inside :func:`hub_errors`, which maps HTTP statuses (401, 403, 404, 409,
5xx) and transport failures (timeouts, dropped connections) to :class:`HubError` with a hint naming the fix. A
token never appears in a message: whatever the server or the client says is scrubbed of it first.
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from typing import Iterator

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from .. import __version__
from .errors import ConfigError, ModelError, ScoreMixError

LOGIN_HINT = "give a token, set HF_TOKEN, or run `hf auth login`"  # errors using it name the field `token`
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class HubError(ScoreMixError):
    """The Hub refused or failed a request (auth, permissions, missing repo, server or network errors)."""

    def __init__(self, message: str, hint: str | None = None, status: int | None = None, field: str | None = None,
                 fields: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint, field=field, fields=fields)
        self.status = status


def check_repo_id(repo_id: str, field: str = "repo_id") -> str:
    """``ORG/NAME`` or a ConfigError naming ``field`` (the CLI names it by the command's flag for it)."""
    try:
        validate_repo_id(repo_id)
        ok = repo_id.count("/") == 1
    except HFValidationError:
        ok = False
    if not ok:
        raise ConfigError(f"{field} {repo_id!r} is not a Hub repository id of the form ORG/NAME",
                          hint=f"set {field} to ORG/NAME with letters, digits, '-', '_' or '.', e.g. my-org/scoremix-faces",
                          field=field)
    return repo_id


_REF_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*(/[A-Za-z0-9_][A-Za-z0-9._+-]*)*")


def check_ref_name(name: str, flag: str) -> str:
    """A tag or branch name git and the Hub accept (no spaces, '..', '~^:?*[\\', leading '-' or '.lock' end)."""
    if not _REF_RE.fullmatch(name) or ".." in name or name.endswith((".lock", ".")) or name.startswith("refs/"):
        raise ConfigError(f"{flag} {name!r} is not a valid git ref name",
                          hint="name it with letters, digits, '.', '-', '_', e.g. v1.0.0", field=flag)
    return name


def resolve_token(explicit: str | None, required: bool = True) -> str | None:
    """``--token`` > ``HF_TOKEN`` > the cached login (``hf auth login``). None only when not ``required``."""
    token = explicit or get_token()
    if token is None and required:
        raise ConfigError("no Hugging Face token found (pushing needs a token with write access)", hint=LOGIN_HINT,
                          field="token")
    return token


def make_api(token: str | None) -> HfApi:
    return HfApi(token=token if token else False, library_name="scoremix-ds", library_version=__version__)


def scrub(text: str, token: str | None) -> str:
    """``text`` with the token (and anything that looks like a bearer header) removed."""
    if token:
        text = text.replace(token, "***")
    return re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Timeouts and connection failures, from whichever HTTP library huggingface_hub uses (already imported)."""
    classes: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx", "requests"):
        module = sys.modules.get(name)
        for attr in ("TransportError", "ConnectionError", "Timeout"):
            cls = getattr(module, attr, None) if module is not None else None
            if isinstance(cls, type) and issubclass(cls, BaseException):
                classes.append(cls)
    return tuple(classes)


def root_cause(exc: BaseException) -> BaseException:
    """The HTTP or transport error inside ``exc`` (the client wraps failed LFS uploads in RuntimeError)."""
    seen: BaseException | None = exc
    transport = _transport_errors()
    while seen is not None:
        if isinstance(seen, (HfHubHTTPError, *transport)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def is_hub_failure(exc: BaseException) -> bool:
    """An HTTP error answered by the Hub, or a transport failure on the way to it (vs. a bug or a local error)."""
    return isinstance(root_cause(exc), (HfHubHTTPError, *_transport_errors()))


def is_retryable(exc: BaseException) -> bool:
    """A server error, rate limit, timeout or dropped connection: worth trying the same request again."""
    cause = root_cause(exc)
    if isinstance(cause, HfHubHTTPError):
        return cause.response is not None and cause.response.status_code in RETRY_STATUSES
    return isinstance(cause, _transport_errors())


def describe(exc: BaseException, token: str | None) -> tuple[int | None, str]:
    """``(status, short reason)`` of a client exception, scrubbed of the token."""
    cause = root_cause(exc)
    if isinstance(cause, HfHubHTTPError) and cause.response is not None:
        status = cause.response.status_code
        reason = getattr(cause.response, "reason_phrase", "") or ""
        server = (cause.server_message or "").strip().splitlines()
        detail = f"{status} {reason}".strip() + (f": {server[0]}" if server else "")
        return status, scrub(detail, token)
    kind = type(cause).__name__
    text = str(cause).strip().splitlines()
    return None, scrub(f"{kind}" + (f": {text[0]}" if text else ""), token)


def map_error(exc: BaseException, repo_id: str, action: str, token: str | None, attempts: int = 1,
              write: bool = True, needs: str | None = None) -> HubError:
    """THE mapping of a client exception to one line: a :class:`HubError` for an exception raised while ``action``
    (e.g. "uploading to org/x"; ``""`` when the caller's message already says what was done). ``needs``: the files a
    download asked for, named when the repository lacks one."""
    status, detail = describe(exc, token)
    cause = root_cause(exc)
    endpoint = constants.ENDPOINT
    during = f" while {action}" if action else ""
    if isinstance(exc, HFValidationError):
        return HubError(f"{repo_id!r} is neither a local folder nor a Hub id{during}",
                        hint="give a folder that exists, or a Hub id ORG/NAME (ORG/NAME@REVISION)")
    if isinstance(exc, LocalEntryNotFoundError):
        return HubError(f"{repo_id} is not in the local cache and the Hub at {endpoint} cannot be reached{during}",
                        hint="check the network, HF_ENDPOINT and HF_HUB_OFFLINE, or give a local folder")
    if isinstance(cause, RemoteEntryNotFoundError):
        return HubError(f"{repo_id} lacks {needs or 'a file it was asked for'}{during} ({detail})",
                        hint="check the repository id and its revision", status=status)
    if isinstance(cause, RepositoryNotFoundError):
        return HubError(f"repository {repo_id} not found on {endpoint} (or the token cannot see it){during}",
                        hint=f"check the repository id; for a private repository {LOGIN_HINT}", status=status,
                        fields=("repo_id", "token"))
    if isinstance(cause, RevisionNotFoundError):
        return HubError(f"revision not found in {repo_id}{during} ({detail})",
                        hint="check the `revision` / `tag`, or list the tags with `scoremix-ds versions`", status=status,
                        fields=("revision", "tag"))
    needed = "a valid token with write access" if write else "a valid token"
    if status == 401:
        return HubError(f"the Hub rejected the token (401 Unauthorized: invalid or expired token){during}",
                        hint=f"use {needed}: {LOGIN_HINT}", status=status, field="token")
    if status == 403:
        what = f"the token has no write access to {repo_id}" if write else f"the token may not read {repo_id}"
        return HubError(f"{what} (403 Forbidden){during}",
                        hint=f"use a token with {'write' if write else 'read'} access to it: {LOGIN_HINT}", status=status,
                        field="token")
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    rerun = "re-run the same command" + (": finished files are not uploaded again and nothing was tagged"
                                         if action.startswith("uploading") else "")
    if status is None and not isinstance(cause, _transport_errors()):  # a local failure (disk, permissions)
        return HubError(f"{detail}{during}", hint="check the Hugging Face cache folder (HF_HOME) and free disk space")
    if status is None:
        return HubError(f"could not reach the Hub at {endpoint}{during}{tries} ({detail})",
                        hint=f"check the network and HF_ENDPOINT, then {rerun}", status=None)
    return HubError(f"the Hub answered {detail}{during}{tries}",
                    hint=f"{rerun} (SCOREMIX_DEBUG=1 shows the traceback)", status=status)


_REACHABLE: dict[str, bool] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connection to the endpoint (cached per process): is the Hub there at all?

    Without it, an unreachable Hub costs the client's full retry schedule (tens of retries over half a minute)
    on every file ``datasets`` asks for, before a useless error.
    """
    import socket
    from urllib.parse import urlparse

    endpoint = constants.ENDPOINT
    if endpoint not in _REACHABLE:
        url = urlparse(endpoint)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname or "localhost", port), timeout=timeout).close()
            _REACHABLE[endpoint] = True
        except OSError:
            _REACHABLE[endpoint] = False
    return _REACHABLE[endpoint]


@contextmanager
def offline_unless_reachable() -> Iterator[bool]:
    """Run ``datasets`` / ``huggingface_hub`` loads offline (cache only, no retries) when the Hub cannot be reached;
    yields True when it had to."""
    if constants.HF_HUB_OFFLINE or hub_reachable():
        yield False
        return
    import datasets

    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield True
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


@contextmanager
def hub_errors(repo_id: str, action: str, token: str | None, write: bool = True) -> Iterator[None]:
    """Run client calls; any HTTP or transport failure leaves as a one-line :class:`HubError`.

    ``write``: the calls need write access (this shapes the 401/403 messages).
    """
    try:
        yield
    except ScoreMixError:
        raise
    except Exception as exc:  # the client wraps failed LFS uploads in RuntimeError; httpx2 errors are no OSError
        if is_hub_failure(exc):
            raise map_error(exc, repo_id, action, token, write=write) from exc
        raise


# Everything a download can raise that is the Hub's or the cache's doing (not a bug): mapped by :func:`map_error`.
DOWNLOAD_FAILURES = (HfHubHTTPError, HFValidationError, EntryNotFoundError, OSError)


@contextmanager
def download_errors(what: str, repo_id: str, revision: str | None, field: str, needs: str | None = None
                    ) -> Iterator[None]:
    """Run a model download (``hf_hub_download`` / ``snapshot_download``); a failure leaves as ONE
    :class:`~scoremix_ds.core.errors.ModelError` ``"cannot fetch WHAT 'ORG/NAME' (revision R): <why>"``, the why
    from :func:`map_error`. ``field``: the config field that named the model; ``needs``: the files asked for."""
    try:
        yield
    except ScoreMixError:
        raise
    except Exception as exc:
        if not (isinstance(exc, DOWNLOAD_FAILURES) or is_hub_failure(exc)):
            raise
        error = map_error(exc, repo_id, "", None, write=False, needs=needs)
        raise ModelError(f"cannot fetch {what} '{repo_id}' (revision {revision or 'main'}): {error.message}",
                         hint=error.hint, field=field) from exc
