"""The CLI's one error boundary: every failure a user can cause becomes ONE line naming the file or flag and a fix.

:func:`as_user_error` maps what the libraries raise for a user's files, disks, devices and Hub ids (OSError with
ENOSPC / EROFS / EACCES, invalid JSON, truncated safetensors, corrupt or decompression-bomb images, a pickle that
``torch.load(weights_only=True)`` refuses, an unusable device, an invalid Hub id, an unreachable Hub) to a
:class:`ScoreMixError`; anything else is a bug and keeps its traceback. :func:`with_flags` names config fields
by the running command's flags (:data:`FIELD_FLAGS`, the one field -> flag table). :func:`redact` scrubs tokens from the tracebacks ``SCOREMIX_DEBUG=1`` prints.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import traceback
from pathlib import Path

from ..core.errors import ConfigError, DataError, ModelError, ScoreMixError

_FILE_LOCALS = ("target", "path", "filename", "file", "fname", "config_file", "json_file", "resolved_archive_file",
                "checkpoint_file", "weights_file", "model_file", "pretrained_model_name_or_path", "tmp", "fp")
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.[^.]+\.scoremix-tmp$")  # outputs.atomic_path's temporaries
_OUT_FIX = "free space or choose another --out; a re-run resumes where this one stopped"


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def file_in_traceback(exc: BaseException) -> str | None:
    """The innermost file a failing frame was working on (a local such as ``path`` naming an existing path)."""
    for e in _chain(exc):
        for frame, _ in reversed(list(traceback.walk_tb(e.__traceback__))):
            for name in _FILE_LOCALS:
                value = frame.f_locals.get(name)
                if isinstance(value, (str, Path)) and str(value) and len(str(value)) < 4096:
                    try:
                        path = Path(value)
                        if path.exists() or (path.is_absolute() and path.parent.is_dir()):  # being written
                            tmp = _TMP_NAME.match(path.name)
                            return str(path.with_name(tmp["name"]) if tmp else path)
                    except (OSError, ValueError):
                        continue
    return None


_PATH_ERRNOS = frozenset({errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST, errno.ENOTEMPTY,
                          errno.EBUSY, errno.EXDEV})


def _os_error(exc: OSError) -> ScoreMixError | None:
    where = exc.filename or file_in_traceback(exc) or "a file"
    if exc.errno == errno.ENOSPC:
        return DataError(f"no space left on the device while writing {where}", hint=_OUT_FIX)
    if exc.errno == errno.EDQUOT:
        return DataError(f"disk quota exceeded while writing {where}", hint=_OUT_FIX)
    if exc.errno == errno.EROFS:
        return DataError(f"{where} is on a read-only file system", hint="choose a writable --out")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return DataError(f"permission denied: {where}", hint="choose a folder you can write to (--out), or fix its permissions")
    if exc.errno == errno.ENOENT and exc.filename:
        return DataError(f"{exc.filename} does not exist", hint="check the path given on the command line")
    if exc.errno in _PATH_ERRNOS and exc.filename:  # a path the user gave that cannot be that file or folder
        return DataError(f"{exc.filename}: {os.strerror(exc.errno).lower()}", hint="check the path given on the command line")
    return None


def as_user_error(exc: BaseException) -> ScoreMixError | None:
    """The one-line error for a failure the user can fix, or None for a bug (which keeps its traceback)."""
    if isinstance(exc, ScoreMixError):
        return exc
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if module.startswith("PIL") or name in ("DecompressionBombError", "UnidentifiedImageError"):
        where = file_in_traceback(exc) or "an image"
        if name == "DecompressionBombError":
            return DataError(f"{where} holds an image too large to decode safely (a decompression bomb?)",
                             hint="remove that image, or pass --skip-corrupt to drop and count such rows")
        return DataError(f"{where} holds an image that does not decode ({name})",
                         hint="remove or replace that image, or pass --skip-corrupt to drop and count such rows")
    if name == "SafetensorError" or "safetensors" in module:
        where = file_in_traceback(exc) or "a .safetensors file"
        return ModelError(f"{where} is not a readable safetensors file (truncated or corrupt: {str(exc)[:80]})",
                          hint="re-download or re-save that model (save_pretrained), or point the flag at another folder")
    if name == "UnpicklingError" or "Weights only load failed" in str(exc):
        where = file_in_traceback(exc) or "a checkpoint"
        return DataError(f"refused to load {where}: it holds pickled objects other than tensors, which scoremix-ds never "
                         "unpickles", hint="delete that file (or its checkpoint folder) and re-run, or use a new --out")
    if isinstance(exc, json.JSONDecodeError) or isinstance(exc, UnicodeDecodeError):
        where = file_in_traceback(exc) or "a JSON file"
        return DataError(f"{where} is not valid JSON ({exc})".replace("\n", " "), hint="fix or restore that file")
    if name == "HFValidationError":
        return ConfigError(f"invalid Hub repository id or revision: {str(exc).splitlines()[0][:160]}",
                           hint="give a local folder, or a Hub id ORG/NAME with the revision in its own --*-revision flag")
    if name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
        return DataError(f"not found locally and the Hub is not reachable (offline): {str(exc).splitlines()[0][:160]}",
                         hint="check the id, unset HF_HUB_OFFLINE, or give a local folder")
    text = str(exc)
    if isinstance(exc, (RuntimeError, AssertionError, ValueError)) and (
            "Torch not compiled with CUDA" in text or "Found no NVIDIA driver" in text
            or "Expected one of cpu" in text or "Invalid device string" in text or "CUDA error" in text):
        return ConfigError(f"the device cannot be used: {text.splitlines()[0][:160]}",
                           hint="use --device cpu, or run on a machine with that device")
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        mapped = _os_error(exc)
        if mapped is not None:
            return mapped
    from ..core.hub_client import is_hub_failure

    if is_hub_failure(exc):
        from ..core.hub_client import map_error

        return map_error(exc, "the repository", "talking to the Hub", None, write=False)
    return None


@functools.lru_cache(maxsize=1)
def _commands() -> dict:
    """The click commands of the app, by name (built once: Typer rebuilds them on every call)."""
    import typer

    from . import app

    return dict(getattr(typer.main.get_command(app), "commands", {}))


def _command(argv: list[str]):
    """``(name, click command)`` that ``argv`` runs (None when it cannot be told)."""
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return None
    command = _commands().get(words[0])
    return None if command is None else (words[0], command)


def command_options(command) -> set[str]:
    """The ``--flags`` of a click command."""
    return {opt for p in command.params for opt in getattr(p, "opts", []) if opt.startswith("--")}


# The one field -> flag table: a config field is named by the command's flag of the same name (``learning_rate``
# -> ``--learning-rate``), except where a command calls it otherwise (here), and by a recipe key where it has none.
FIELD_FLAGS: dict[str, dict[str, str]] = {
    "train-discriminator": {"real": "--real-data"},  # the alias command names `train`'s --real by build's flag
    "push": {"repo_id": "--repo"},
    **{name: {"repo_id": "--push-to"} for name in ("build", "train", "train-generator")},  # their push after the run
    "reproduce": {"recipe": "RECIPE"},  # the recipe is reproduce's argument
}
# Where a command's recipe keys are set, for fields it has no flag for.
RECIPE_KEYS = {"reproduce": "in the RECIPE file"}


def field_flags(name: str, command) -> dict[str, str]:
    """Config field -> how command ``name`` names it (its flag, or an argument such as RECIPE)."""
    flags = {opt[2:].replace("-", "_"): opt for opt in command_options(command)}
    return {**flags, **FIELD_FLAGS.get(name, {})}


_FLAG = re.compile(r"(?<![\w`])--[a-z][a-z0-9-]*")
_VERB = r"(?:^|(?<=set )|(?<=pass )|(?<=use )|(?<=check )|(?<=give )|(?<=drop )|(?<=lower )|(?<=raise )|(?<=and/or )|(?<= or )|(?<=/ )|(?<=below ))"


def _own_flags_only(hint: str, options: set[str]) -> str:
    """``hint`` without its alternatives that name a flag this command does not have (``or pass --skip-corrupt``
    on a command without it); flags inside backticks belong to another command line and stay."""
    parts = re.split(r",? or (?=pass |use |give |add |set )", hint)
    kept = [p for p in parts if all(f in options for f in _FLAG.findall(re.sub(r"`[^`]*`", "", p)))]
    return ", or ".join(kept) if kept else hint


def with_flags(exc: ScoreMixError, argv: list[str]) -> ScoreMixError:
    """``exc`` as command ``argv[0]`` words it: the config fields it names become that command's flags
    (:data:`FIELD_FLAGS`), a field the command has no flag for is a recipe key and the hint says so, and a hint's
    alternative that names a flag the command lacks is dropped."""
    found = _command(argv)
    if found is None:
        return exc
    name, command = found
    options = command_options(command)
    flags = field_flags(name, command)
    message, hint = exc.message, _own_flags_only(exc.hint or "", options)
    named = getattr(exc, "fields", ())
    for field in sorted(flags, key=len, reverse=True):
        # snake_case names are identifiers wherever they appear; a one-word field the error names ("guidance")
        # where it is the subject: first in the message, and after the verb of a hint (elsewhere it may be prose)
        word = rf"(?<![\w\-/.']){re.escape(field)}(?![\w\-/'])"  # not inside a path or a quoted value
        if "_" in field:
            message, hint = re.sub(word, flags[field], message), re.sub(word, flags[field], hint)
        elif field in named:
            message = re.sub(rf"^{word}", flags[field], message)
            hint = re.sub(_VERB + word, flags[field], hint)
    missing = [f for f in named if f not in flags]
    where = RECIPE_KEYS.get(name, "in the --recipe file" if "--recipe" in options else None)
    if missing and where:
        if len(missing) < len(named):
            hint = f"{hint} ({', '.join(missing)} {where})"
        else:
            hint = f"{hint}, {where}" if hint else f"set {missing[0]} {where}"
    if (message, hint or None) == (exc.message, exc.hint):
        return exc
    renamed = type(exc).__new__(type(exc))
    renamed.__dict__.update(exc.__dict__)
    Exception.__init__(renamed, message)
    renamed.message, renamed.hint = message, hint or None
    return renamed


_SECRET = re.compile(r"(authorization\s*[:=]\s*['\"]?(?:bearer\s+|basic\s+|token\s+)?)([^\s'\",}]+)|(bearer\s+)([^\s'\",}]+)",
                     re.IGNORECASE)
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")  # the Hub's token format (case-sensitive: not HF_HOME)


def redact(text: str, tokens: list[str]) -> str:
    """``text`` with every token given, every ``hf_...`` token and every Authorization / Bearer value masked."""
    for token in sorted({t for t in tokens if t and len(t) >= 4}, key=len, reverse=True):
        text = text.replace(token, "***")

    def mask(m: re.Match) -> str:
        if m.group(1) is not None:
            return m.group(1) + "***"
        return m.group(3) + "***"

    return _HF_TOKEN.sub("***", _SECRET.sub(mask, text))


def known_tokens(argv: list[str]) -> list[str]:
    """Tokens this process may hold: ``--token`` values, HF_TOKEN / HUGGING_FACE_HUB_TOKEN, the cached login."""
    found = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--token"]
    found += [a.split("=", 1)[1] for a in argv if a.startswith("--token=")]
    found += [os.environ.get(k, "") for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")]
    try:
        from huggingface_hub import get_token

        found.append(get_token() or "")
    except Exception:  # no cached login, or an unreadable one: nothing to add
        pass
    return [t for t in found if t]


def format_traceback(exc: BaseException, argv: list[str]) -> str:
    return redact("".join(traceback.format_exception(exc)), known_tokens(argv))
