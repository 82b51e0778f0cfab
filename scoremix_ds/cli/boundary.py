"""The CLI's one error boundary: every failure a user can cause becomes ONE line naming the file or flag and a fix.

:func:`as_user_error` maps what the libraries raise for a user's files, disks, devices and Hub ids (OSError with
ENOSPC / EROFS / EACCES, invalid JSON, truncated safetensors, corrupt or decompression-bomb images, a pickle that
``torch.load(weights_only=True)`` refuses, an unusable device, an invalid Hub id, an unreachable Hub) to a
:class:`ScoreMixError`; anything else is a bug and keeps its traceback. Library errors name config FIELDS (their
``fields``), never flags; :func:`error_line` prints the error naming each declared field by the flag of the
command that ran (:func:`field_flags`: the command's own parameters, plus :data:`FIELD_FLAGS` where a command calls
a field otherwise): where the text names it as its subject or in backticks, else in parentheses after the hint
(:func:`for_command`), so a line never names a flag the running command lacks. :func:`redact` scrubs tokens from
the tracebacks ``SCOREMIX_DEBUG=1`` prints.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import tempfile
import traceback
from pathlib import Path

import typer

from ..core.errors import ConfigError, DataError, ModelError, ScoreMixError
from .commands import app

_FILE_LOCALS = ("target", "path", "filename", "file", "fname", "config_file", "json_file", "resolved_archive_file",
                "checkpoint_file", "weights_file", "model_file", "pretrained_model_name_or_path", "tmp", "fp")
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.[^.]+\.scoremix-tmp$")  # outputs.atomic_path's temporaries
# The commands whose re-run picks up where a failed run stopped (finished shards, stages or checkpoints are kept).
RESUMING = frozenset({"build", "reproduce", "train", "train-generator", "train-discriminator"})


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


def _full_disk_fix(command: str | None) -> str:
    """What frees a run that filled its disk: push stages its upload in the temporary folder; the others write to
    their output folder, and some of them resume."""
    if command == "push":
        return (f"free space in {tempfile.gettempdir()}, where push stages the upload, or set TMPDIR to stage it "
                "elsewhere")
    resumes = "; a re-run resumes where this one stopped" if command in RESUMING else ""
    return f"free space, or write to another output folder{resumes}"


def _os_error(exc: OSError, command: str | None = None) -> ScoreMixError | None:
    where = exc.filename or file_in_traceback(exc) or "a file"
    if exc.errno == errno.ENOSPC:
        return DataError(f"no space left on the device while writing {where}", hint=_full_disk_fix(command), field="out")
    if exc.errno == errno.EDQUOT:
        return DataError(f"disk quota exceeded while writing {where}", hint=_full_disk_fix(command), field="out")
    if exc.errno == errno.EROFS:
        return DataError(f"{where} is on a read-only file system", hint="write to a folder on a writable disk", field="out")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return DataError(f"permission denied: {where}", hint="write to a folder you can write to, or fix its permissions",
                         field="out")
    if exc.errno == errno.ENOENT and exc.filename:
        return DataError(f"{exc.filename} does not exist", hint="check the path given on the command line")
    if exc.errno in _PATH_ERRNOS and exc.filename:  # a path the user gave that cannot be that file or folder
        return DataError(f"{exc.filename}: {os.strerror(exc.errno).lower()}", hint="check the path given on the command line")
    return None


def as_user_error(exc: BaseException, argv: list[str] | None = None) -> ScoreMixError | None:
    """The one-line error for a failure the user can fix, or None for a bug (which keeps its traceback). ``argv``:
    the command line that ran, so a hint offers only what that command can do."""
    if isinstance(exc, ScoreMixError):
        return exc
    found = _command(argv or [])
    command = found[0] if found else None
    can_skip = found is not None and "--skip-corrupt" in command_options(found[1])
    skip = ", or set skip_corrupt to drop and count such rows" if can_skip else ""
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if module.startswith("PIL") or name in ("DecompressionBombError", "UnidentifiedImageError"):
        where = file_in_traceback(exc) or "an image"
        if name == "DecompressionBombError":
            return DataError(f"{where} holds an image too large to decode safely (a decompression bomb?)",
                             hint=f"remove that image{skip}", field="skip_corrupt" if skip else None)
        return DataError(f"{where} holds an image that does not decode ({name})",
                         hint=f"remove or replace that image{skip}", field="skip_corrupt" if skip else None)
    if name == "SafetensorError" or "safetensors" in module:
        where = file_in_traceback(exc) or "a .safetensors file"
        return ModelError(f"{where} is not a readable safetensors file (truncated or corrupt: {str(exc)[:80]})",
                          hint="re-download or re-save that model (save_pretrained), or give another folder")
    if name == "UnpicklingError" or "Weights only load failed" in str(exc):
        where = file_in_traceback(exc) or "a checkpoint"
        return DataError(f"refused to load {where}: it holds pickled objects other than tensors, which scoremix-ds never "
                         "unpickles", hint="delete that file (or its checkpoint folder) and re-run, or write to a new output "
                         "folder", field="out")
    if isinstance(exc, json.JSONDecodeError) or isinstance(exc, UnicodeDecodeError):
        where = file_in_traceback(exc) or "a JSON file"
        return DataError(f"{where} is not valid JSON ({exc})".replace("\n", " "), hint="fix or restore that file")
    if name == "HFValidationError":
        return ConfigError(f"invalid Hub repository id or revision: {str(exc).splitlines()[0][:160]}",
                           hint="give a local folder, or a Hub id ORG/NAME with the revision after an @ (ORG/NAME@REV)")
    if name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
        return DataError(f"not found locally and the Hub is not reachable (offline): {str(exc).splitlines()[0][:160]}",
                         hint="check the id, unset HF_HUB_OFFLINE, or give a local folder")
    text = str(exc)
    if isinstance(exc, (RuntimeError, AssertionError, ValueError)) and (
            "Torch not compiled with CUDA" in text or "Found no NVIDIA driver" in text
            or "Expected one of cpu" in text or "Invalid device string" in text or "CUDA error" in text):
        return ConfigError(f"the device cannot be used: {text.splitlines()[0][:160]}",
                           hint="set device to cpu, or run on a machine with that device", field="device")
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        mapped = _os_error(exc, command)
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
    return dict(getattr(typer.main.get_command(app), "commands", {}))


def _command(argv: list[str]):
    """``(name, click command)`` that ``argv`` runs (None when it cannot be told)."""
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return None
    command = _commands().get(words[0])
    return None if command is None else (words[0], command)


def command_options(command) -> set[str]:
    """The ``--flags`` of a click command (with the ``--no-x`` of each ``--x/--no-x`` switch)."""
    return {opt for p in command.params for opt in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]
            if opt.startswith("--")}


# The one field -> flag table. A command names a config field by its own parameter of that name: the Typer option
# ``real_data`` is ``--real-data``, the argument ``folder`` is ``FOLDER``. Only where a command calls a field
# otherwise is it listed here; a field a command has no parameter for is a key of its recipe (RECIPE_KEYS), or is
# not named at all (the command cannot set it, so no flag is suggested).
FIELD_FLAGS: dict[str, dict[str, str]] = {
    "train-discriminator": {"real": "--real-data"},  # the alias command names train's --real by build's flag
    "push": {"repo_id": "--repo"},
    **{name: {"repo_id": "--push-to"} for name in ("build", "train", "train-generator")},  # their push after the run
    "eval": {"discriminator": "MODEL"},  # eval's MODEL argument is loaded as a discriminator
    "audit": {"out": "FOLDER"},  # audit writes its results into the build FOLDER it reads
    "status": {"out": "FOLDER"},  # the build folder it reads
}
# Where a command's recipe keys are set, for fields it has no flag for, and the configs its recipe holds.
RECIPE_KEYS = {"reproduce": "a key of the RECIPE file"}
_BUILD = "scoremix_ds.synthesis.config:BuildConfig"
_TRAIN = "scoremix_ds.training.recognition_config:RecognitionTrainConfig"
_GENERATOR = "scoremix_ds.training.generator_config:GeneratorTrainConfig"
RECIPE_CONFIGS = {
    "build": (_BUILD,), "plan": (_BUILD,), "train": (_TRAIN,), "train-discriminator": (_TRAIN,),
    "train-generator": (_GENERATOR,),
    "reproduce": ("scoremix_ds.reproduce.config:ReproduceConfig", "scoremix_ds.reproduce.config:EvalSettings",
                  _BUILD, _TRAIN, _GENERATOR),
}


@functools.lru_cache(maxsize=None)
def recipe_fields(name: str) -> frozenset[str]:
    """The config fields a recipe of command ``name`` may set (none for a command without a recipe)."""
    import dataclasses
    import importlib

    found = set()
    for spec in RECIPE_CONFIGS.get(name, ()):
        module, _, cls = spec.partition(":")
        found |= {f.name for f in dataclasses.fields(getattr(importlib.import_module(module), cls)) if f.init}
    return frozenset(found)


def field_flags(name: str, command) -> dict[str, str]:
    """Config field -> how command ``name`` names it: its option (``--real-data``) or argument (``FOLDER``)."""
    table: dict[str, str] = {}
    for param in command.params:
        longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        if longs:
            table.setdefault(param.name, longs[0])
            for opt in longs:
                table.setdefault(opt[2:].replace("-", "_"), opt)
        elif getattr(param, "param_type_name", "") == "argument":
            table.setdefault(param.name, param.name.upper())
    return {**table, **FIELD_FLAGS.get(name, {})}


def _recipe_key(name: str, command, field: str) -> str | None:
    """Where ``field`` is set in command ``name``'s recipe, or None when that recipe has no such key."""
    if field not in recipe_fields(name):
        return None
    return RECIPE_KEYS.get(name, "a key of the --recipe file" if "--recipe" in command_options(command) else None)


def for_command(exc: ScoreMixError, argv: list[str]) -> ScoreMixError:
    """``exc`` as command ``argv[0]`` prints it. Only the fields the error declares (``exc.fields``) are named by
    the command's flags, at the two places a library text names a field: its subject (the message's first word,
    ``pairs must be ...``) and a field in backticks (``use `pairs` 6 or fewer``). A declared field the text does
    not show that way is added after the hint (or the message) in parentheses: ``(real: --real-data)``,
    ``(ema_decay: a key of the --recipe file)``. A field the command cannot set keeps its name and gets nothing."""
    found = _command(argv)
    fields = tuple(dict.fromkeys(getattr(exc, "fields", ()) or ()))
    if found is None or not fields:
        return exc
    name, command = found
    flags = field_flags(name, command)
    message, hint, extra = exc.message, exc.hint or "", []
    for field in fields:
        flag = flags.get(field)
        if flag is None:
            recipe = _recipe_key(name, command, field)
            if recipe is not None:
                extra.append(f"{field}: {recipe}")
            continue
        subject = re.compile(rf"^{re.escape(field)}(?![\w-])")
        quoted = f"`{field}`"
        shown = bool(subject.match(message)) or quoted in message or quoted in hint
        message = subject.sub(flag, message).replace(quoted, flag)
        hint = hint.replace(quoted, flag)
        if not shown:
            extra.append(flag if flag == "--" + field.replace("_", "-") else f"{field}: {flag}")
    if extra:
        where = ", ".join(extra)
        if hint:
            hint = f"{hint} ({where})"
        else:
            message = f"{message} ({where})"
    hint = hint or None
    if (message, hint) == (exc.message, exc.hint):
        return exc
    shown = type(exc).__new__(type(exc))
    shown.__dict__.update(exc.__dict__)
    Exception.__init__(shown, message)
    shown.message, shown.hint = message, hint
    return shown


def error_line(exc: ScoreMixError, argv: list[str]) -> str:
    """The ONE line the CLI prints for ``exc`` when ``argv`` ran."""
    shown = for_command(exc, argv)
    return f"error: {shown.message}" + (f" — {shown.hint}" if shown.hint else "")


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
