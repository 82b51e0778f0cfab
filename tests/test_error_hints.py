"""Every error hint a command can print names flags that command really has.

Two walks. (1) Statically, every ``--flag`` that library code writes into an error (message, hint, a ``*HINT`` /
``*FLAG`` constant, a flag-valued table entry) exists on some command: a hint naming ``--folds`` or ``--block-rows``
names a flag no user can pass. (2) Per command, every rule of every config that command builds is broken with bad
values, and the error is rendered as the CLI prints it (:func:`scoremix_ds.cli.boundary.with_flags`): each
``--flag`` in the line must be one of that command's options, and each config field the error names must appear
either as the command's flag for it or as a recipe key. Flags inside backticks belong to another command line
(``run `scoremix-ds build --out DIR```) and are not checked.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import typer

import scoremix_ds
from scoremix_ds.cli import app
from scoremix_ds.cli.boundary import field_flags, with_flags
from scoremix_ds.core.errors import ScoreMixError

PACKAGE = Path(scoremix_ds.__file__).parent
FLAG = re.compile(r"(?<![\w`])--[a-z][a-z0-9-]*")
ERROR_NAMES = {"ScoreMixError", "ConfigError", "DataError", "ModelError", "HubError"}


def commands() -> dict:
    return dict(typer.main.get_command(app).commands)


def options(command) -> set[str]:
    """Its ``--flags``, with the ``--no-x`` of each ``--x/--no-x`` switch."""
    return {opt for p in command.params for opt in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]
            if opt.startswith("--")}


def named_flags(text: str) -> set[str]:
    return set(FLAG.findall(re.sub(r"`[^`]*`", "", text)))


# ------------------------------------------------------------------------------------- (1) the library's texts


def _strings(node: ast.AST) -> list[str]:
    """The literal text inside an expression: string constants and the constant parts of f-strings."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def library_error_texts() -> list[tuple[str, str]]:
    """``(where, text)`` for every literal text that library code puts into an error."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        if "testing" in path.parts or "cli" in path.relative_to(PACKAGE).parts[:1]:
            continue  # the loopback Hub is test infrastructure; cli/ declares the options (checked per command)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{rel}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call):
                func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if func in ERROR_NAMES:
                    for arg in [*node.args, *(k.value for k in node.keywords)]:
                        found += [(where, s) for s in _strings(arg)]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id if isinstance(t, ast.Name) else getattr(t, "attr", "") for t in targets]
                if any(re.search(r"HINT|FIX|FLAG", n) for n in names) and node.value is not None:
                    found += [(where, s) for s in _strings(node.value)]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"--[a-z][a-z0-9-]*", node.value):
                found.append((where, node.value))  # a flag-valued table entry: ("--steps", self.steps), ...
    return found


def test_every_flag_a_library_error_names_exists_on_some_command():
    texts = library_error_texts()
    assert len(texts) > 300  # the walk sees the library's errors (a broken walk would pass with nothing)
    every = set().union(*(options(c) for c in commands().values()))
    unknown = sorted({(flag, where) for where, text in texts for flag in named_flags(text) if flag not in every})
    assert not unknown, "\n".join(f"{where}: {flag} is a flag of no command" for flag, where in unknown)


# ------------------------------------------------------------------ (2) each command's config rules, as printed


def _configs():
    from scoremix_ds.analysis.align import AlignConfig
    from scoremix_ds.analysis.audit_run import AuditConfig
    from scoremix_ds.synthesis.config import BuildConfig
    from scoremix_ds.hub.push import PushConfig
    from scoremix_ds.hub.push_model import ModelPushConfig
    from scoremix_ds.reproduce.config import EvalSettings, ReproduceConfig
    from scoremix_ds.training.generator_config import GeneratorTrainConfig
    from scoremix_ds.training.recognition_config import RecognitionTrainConfig

    train = (RecognitionTrainConfig, {"real": ("mnist-5k",)})
    # the push after a run: only the fields its command sets (repo_id from --push-to, --tag, ...)
    push = (ModelPushConfig, {"folder": "runs/x", "repo_id": "org/model"}, ("repo_id", "tag"))
    return {  # the configs each command builds (from its flags, or its recipe), with values that pass their rules
        "build": [(BuildConfig, {}), (PushConfig, {"folder": "out", "repo_id": "org/data"}, ("repo_id", "tag", "force_tag"))],
        "plan": [(BuildConfig, {})],
        "train": [train, push],
        "train-discriminator": [train],
        "train-generator": [(GeneratorTrainConfig, {}), push],
        "align": [(AlignConfig, {})],
        "audit": [(AuditConfig, {"folder": "out"})],
        "push": [(PushConfig, {"folder": "out", "repo_id": "org/data"})],
        "reproduce": [(ReproduceConfig, {"generator": "default", "discriminator": "default"}), (EvalSettings, {}),
                      (BuildConfig, {}), train, (GeneratorTrainConfig, {})],  # its recipe's sections
    }


BAD_VALUES = (0, -1, 1.5, float("nan"), float("inf"), 10**9, "nonsense", "", None, (), ("nonsense",), (-1, 5),
              (60.0, 40.0), (0.5, -0.5), True)


def config_errors(cls, base: dict, settable: tuple[str, ...] | None = None) -> list[tuple[str, ScoreMixError]]:
    """Each distinct error ``cls``'s rules raise for one field set to a bad value (the others valid); ``settable``:
    only those fields (the rest are not the command's to set)."""
    errors = {}
    for field in dataclasses.fields(cls):
        if not field.init or (settable is not None and field.name not in settable):
            continue
        for value in BAD_VALUES:
            try:
                cls(**{**base, field.name: value})
            except ScoreMixError as exc:
                errors.setdefault((exc.message, exc.hint), (f"{cls.__name__}.{field.name}={value!r}", exc))
            except Exception:  # noqa: BLE001 - a wrong type no recipe or flag can give (recipes are type-checked)
                pass
    return list(errors.values())


@pytest.mark.parametrize("name", sorted(_configs()))
def test_config_errors_name_the_commands_own_flags(name):
    command = commands()[name]
    own = options(command)
    problems, seen = [], 0
    for cls, base, *settable in _configs()[name]:
        for case, exc in config_errors(cls, base, *settable):
            seen += 1
            shown = with_flags(exc, [name])
            line = f"{shown.message} — {shown.hint or ''}"
            foreign = named_flags(line) - own
            if foreign:
                problems.append(f"{case}: {sorted(foreign)} not options of `{name}`: {line}")
            for field in getattr(exc, "fields", ()):
                if field_flags(name, command).get(field, field) not in line:
                    problems.append(f"{case}: names field {field} nowhere: {line}")
    assert seen >= 1, seen  # the bad values do reach the rules
    assert not problems, "\n".join(problems)


def test_a_field_becomes_the_flag_of_the_command_that_has_it():
    from scoremix_ds.training.recognition_config import RecognitionTrainConfig

    with pytest.raises(ScoreMixError) as info:
        RecognitionTrainConfig(real=(), synthetic=())
    assert set(info.value.fields) == {"real", "synthetic"}
    assert "--real and/or --synthetic" in with_flags(info.value, ["train"]).hint
    alias = with_flags(info.value, ["train-discriminator"]).hint  # `real` is train-discriminator's --real-data
    assert "--real-data" in alias and "--recipe" in alias and "--synthetic" not in alias
    with pytest.raises(ScoreMixError) as info:
        RecognitionTrainConfig(real=("x",), keep_checkpoints=0)
    shown = with_flags(info.value, ["train"])
    assert shown.message.startswith("keep_checkpoints must be a positive count") and "--recipe" in shown.hint
