"""Every error line a command prints names only flags that command really has; the library names config fields.

Three walks. (1) Statically, library code writes no ``--flag`` into an error (message, hint, a ``*HINT`` / ``*FIX``
/ ``*FLAG`` constant): it names config fields, recipe keys or files, and the CLI names the flag. (2) Per command,
every rule of every config that command builds is broken with bad values, and the error is rendered as the CLI
prints it (:func:`scoremix_ds.cli.boundary.error_line`): each ``--flag`` in the line must be one of that command's
options, and each field the error declares must appear as the command's flag for it, as a recipe key, or (a field
the command cannot set) by its name. (3) Each command is run in-process with broken inputs and every ``--flag`` its
error line names must be one of its options. Flags inside backticks belong to another command line (``run
`scoremix-ds build --out DIR```) and are not checked.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import typer

import scoremix_ds
from scoremix_ds.cli import app, main
from scoremix_ds.cli.boundary import error_line, field_flags, for_command
from scoremix_ds.core.errors import ConfigError, ScoreMixError

PACKAGE = Path(scoremix_ds.__file__).parent
FLAG = re.compile(r"(?<![\w`])--[a-z][a-z0-9-]*")
ERROR_NAMES = {"ScoreMixError", "ConfigError", "DataError", "ModelError", "HubError"}
# Being rewritten onto the shared training loop (issue 21 section 1) by other work; their texts still name flags
# and are held to the weaker rule (each flag exists on some command) until that lands.
PENDING = {"scoremix_ds/training/generator.py", "scoremix_ds/training/recognition.py",
           "scoremix_ds/training/checkpoints.py", "scoremix_ds/training/resume.py",
           "scoremix_ds/training/lr_schedule.py"}


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
                if any(re.search(r"HINT|FIX|FLAG|REPAIR", n) or re.fullmatch(r"_?(hint|fix)", n) for n in names) \
                        and node.value is not None:
                    found += [(where, s) for s in _strings(node.value)]
    return found


def test_library_errors_name_fields_not_flags():
    texts = library_error_texts()
    assert len(texts) > 300  # the walk sees the library's errors (a broken walk would pass with nothing)
    every = set().union(*(options(c) for c in commands().values()))
    flagged = sorted({(where, flag) for where, text in texts for flag in named_flags(text)})
    pending = [(w, f) for w, f in flagged if w.split(":")[0] in PENDING]
    assert not [f"{w}: {f}" for w, f in flagged if (w, f) not in pending], \
        "library errors name config fields; the CLI names the flags"
    assert not [f"{w}: {f} is a flag of no command" for w, f in pending if f not in every]


def test_a_flag_valued_library_constant_is_a_flag_of_some_command():
    """Argument lists the library builds (a relaunch, options it strips) spell flags that exist."""
    every = set().union(*(options(c) for c in commands().values()))
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "testing" in path.parts or "cli" in path.relative_to(PACKAGE).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"--[a-z][a-z0-9-]*", node.value):
                found.append((f"{path.relative_to(PACKAGE.parent)}:{node.lineno}", node.value))
    accelerate = {"--multi_gpu", "--num_processes", "--num_machines", "--mixed_precision", "--dynamo_backend"}
    unknown = [f"{w}: {f}" for w, f in found if f not in every and f not in accelerate]
    assert not unknown, unknown


# ------------------------------------------------------------------ (2) each command's config rules, as printed


def _configs():
    from scoremix_ds.analysis.align import AlignConfig
    from scoremix_ds.analysis.audit_run import AuditConfig
    from scoremix_ds.hub.push import PushConfig
    from scoremix_ds.hub.push_model import ModelPushConfig
    from scoremix_ds.reproduce.config import EvalSettings, ReproduceConfig
    from scoremix_ds.synthesis.config import BuildConfig
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
            line = error_line(exc, [name])
            foreign = named_flags(line) - own
            if foreign:
                problems.append(f"{case}: {sorted(foreign)} not options of `{name}`: {line}")
            for field in exc.fields:
                if field_flags(name, command).get(field, field) not in line:
                    problems.append(f"{case}: names field {field} nowhere: {line}")
    assert seen >= 1, seen  # the bad values do reach the rules
    assert not problems, "\n".join(problems)


def test_a_field_becomes_the_flag_of_the_command_that_has_it():
    from scoremix_ds.training.recognition_config import RecognitionTrainConfig

    with pytest.raises(ScoreMixError) as info:
        RecognitionTrainConfig(real=(), synthetic=())
    assert set(info.value.fields) == {"real", "synthetic"}
    assert not named_flags(str(info.value))  # the library names fields...
    shown = error_line(info.value, ["train"])  # ...train names them by its flags
    assert "--real" in shown and "--synthetic" in shown
    alias = error_line(info.value, ["train-discriminator"])  # `real` is train-discriminator's --real-data
    assert "--real-data" in alias and "--synthetic" not in named_flags(alias)
    with pytest.raises(ScoreMixError) as info:
        RecognitionTrainConfig(real=("x",), keep_checkpoints=0)
    shown = for_command(info.value, ["train"])  # no flag for it: a key of train's recipe
    assert shown.message.startswith("keep_checkpoints must be a positive count") and "--recipe" in shown.hint


def test_the_subject_and_backticked_fields_become_flags_and_nothing_else_changes():
    exc = ConfigError("pairs must be a positive count, got 0 (3 pairs exist)", hint="use `pairs` 3 or fewer",
                      field="pairs")
    assert error_line(exc, ["build"]) == "error: --pairs must be a positive count, got 0 (3 pairs exist) — use --pairs 3 or fewer"
    assert str(exc) == "pairs must be a positive count, got 0 (3 pairs exist) (use `pairs` 3 or fewer)"
    other = ConfigError("mixing needs at least 2 classes", hint="check the data", fields=("classes", "real_data"))
    assert error_line(other, ["build"]) == "error: mixing needs at least 2 classes — check the data (--classes, --real-data)"
    assert error_line(other, ["status", "x"]) == "error: mixing needs at least 2 classes — check the data"  # no way to set them
    undeclared = ConfigError("steps must be a positive count", hint="set `steps` to 1")
    assert error_line(undeclared, ["build"]) == "error: steps must be a positive count — set `steps` to 1"


def test_disk_errors_offer_only_what_the_command_has(tmp_path):
    import errno

    from scoremix_ds.cli.boundary import as_user_error

    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))
    for name in ("build", "plan", "audit", "push", "train", "merge", "align", "eval"):
        line = error_line(as_user_error(full, [name]), [name])
        assert named_flags(line) <= options(commands()[name]), line
    assert "TMPDIR" in error_line(as_user_error(full, ["push"]), ["push"])
    assert "resumes" in error_line(as_user_error(full, ["build"]), ["build"])
    assert "resumes" not in error_line(as_user_error(full, ["plan"]), ["plan"])
    readonly = OSError(errno.EROFS, "Read-only file system", str(tmp_path / "y"))
    assert "--out" not in error_line(as_user_error(readonly, ["audit"]), ["audit"])
    assert "FOLDER" in error_line(as_user_error(readonly, ["audit"]), ["audit"])


# --------------------------------------------------------------------- (3) each command, broken, run in-process


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def broken_inputs(t: Path, gen: str, disc: str, real: str) -> dict[str, list[list[str]]]:
    """A few broken command lines for each command (``t``: a scratch folder)."""
    models = ["--generator", gen, "--discriminator", disc, "--real-data", real]
    build = ["build", *models, "--pairs", "2", "--per-identity", "1", "--steps", "2", "--no-progress"]
    plan = ["plan", *models, "--pairs", "2", "--per-identity", "1", "--no-progress"]
    a_file = _write(t / "a-file", "x")
    foreign = t / "foreign"
    _write(foreign / "mine.txt", "the user's")
    empty = t / "empty"
    empty.mkdir(exist_ok=True)
    train = ["train", "--real", real, "--backbone", "small-cnn", "--embedding-dim", "8", "--image-size", "8",
             "--channels", "1", "--steps", "1", "--batch-size", "8", "--checkpoint-every", "0", "--no-progress"]
    gen_train = ["train-generator", "--real-data", real, "--steps", "1", "--batch-size", "4", "--no-progress"]
    align = ["align", *models]
    return {
        "build": [
            [*build, "--pairs", "0", "--out", str(t / "b0")],
            [*build, "--pairs", "7", "--out", str(t / "b1")],  # 4 classes: 6 pairs
            [*build, "--classes", "0,9", "--out", str(t / "b2")],
            [*build, "--weights", "0.4,0.4", "--out", str(t / "b3")],
            [*build, "--shard", "3", "--num-shards", "2", "--out", str(t / "b4")],
            [*build, "--out", a_file],
            [*build, "--out", str(foreign)],
            [*build, "--real-data", str(t / "nope"), "--out", str(t / "b5")],
            [*build, "--real-data", str(empty), "--out", str(t / "b6")],
            [*build, "--plan", a_file, "--out", str(t / "b7")],
            [*build, "--generator", str(t / "nope"), "--out", str(t / "b8")],
            [*build, "--band", "60,40", "--strategy", "band", "--out", str(t / "b9")],
            [*build, "--recipe", a_file, "--out", str(t / "b10")],
        ],
        "plan": [
            [*plan, "--pairs", "0", "--out", str(t / "p0.parquet")],
            [*plan, "--strategy", "farthest", "--out", str(t / "p1.parquet")],
            [*plan, "--out", a_file],
            [*plan, "--real-data", str(empty), "--out", str(t / "p2.parquet")],
            [*plan, "--classes", "0,9", "--out", str(t / "p3.parquet")],
        ],
        "train": [
            [*train, "--steps", "0", "--out", str(t / "t0")],
            [*train, "--learning-rate", "nan", "--out", str(t / "t1")],
            [*train, "--real", str(t / "nope"), "--out", str(t / "t2")],
            [*train, "--real", str(empty), "--out", str(t / "t3")],
            [*train, "--backbone", "nope", "--out", str(t / "t4")],
            [*train, "--synthetic-ratio", "-1", "--out", str(t / "t5")],
            [*train, "--out", str(foreign)],
        ],
        "train-generator": [
            [*gen_train, "--steps", "0", "--out", str(t / "g0")],
            [*gen_train, "--learning-rate", "nan", "--out", str(t / "g1")],
            [*gen_train, "--real-data", str(t / "nope"), "--out", str(t / "g2")],
            [*gen_train, "--out", str(foreign)],
        ],
        "eval": [
            ["eval", str(t / "nope"), "--benchmark", "heldout:mnist-5k-heldout:300", "--out", str(t / "e0")],
            ["eval", disc, "--benchmark", "nonsense:x", "--out", str(t / "e1")],
            ["eval", disc, "--benchmark", "heldout:mnist-5k-heldout:1", "--out", str(t / "e2")],
            ["eval", disc, "--batch-size", "0", "--out", str(t / "e3")],
        ],
        "audit": [
            ["audit", str(t / "nope")],
            ["audit", str(empty)],
            ["audit", a_file],
        ],
        "align": [
            [*align, "--classes", "0,1"],
            [*align, "--k", "0"],
            [*align, "--real-data", str(t / "nope")],
            [*align, "--other-discriminator", str(t / "nope")],
            [*align, "--classes", "0,9"],
        ],
        "push": [
            ["push", str(t / "nope"), "--repo", "org/data"],
            ["push", str(empty), "--repo", "org/data"],
            ["push", str(empty), "--repo", "not a repo"],
            ["push", str(empty), "--repo", "org/data", "--force-tag"],
            ["push", str(empty), "--repo", "org/data", "--tag", "bad tag"],
        ],
        "merge": [
            ["merge", str(empty), "--out", str(t / "m0")],
            ["merge", str(t / "nope"), "--out", str(t / "m1")],
            ["merge", a_file, "--out", str(t / "m2")],
        ],
        "reproduce": [
            ["reproduce", str(t / "nope.toml")],
            ["reproduce", _write(t / "bad.toml", "this is = not [toml"), "--out", str(t / "r0")],
            ["reproduce", _write(t / "odd.toml", 'name = "x"\nseeds = [0]\n[build]\nsteps = -1\n'), "--out", str(t / "r1")],
            ["reproduce", _write(t / "unknown.toml", 'name = "x"\nnonsense = 1\n'), "--out", str(t / "r2")],
        ],
    }


COMMANDS = ("build", "plan", "train", "train-generator", "eval", "audit", "align", "push", "merge", "reproduce")


@pytest.mark.parametrize("name", COMMANDS)
def test_broken_inputs_name_only_the_commands_own_flags(name, tmp_path, capsys, monkeypatch, one_thread,
                                                        tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing here may reach a network
    cases = broken_inputs(tmp_path / "t", str(tiny_generator_dir), str(tiny_discriminator_dir), str(tiny_real_data_dir))
    own = options(commands()[name])
    problems = []
    for argv in cases[name]:
        capsys.readouterr()
        rc = main(argv)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        if rc == 0 or len(lines) != 1:  # each case is refused in one line (a usage error is click's own)
            if not (rc == 2 and "Usage:" in err):
                problems.append(f"{argv[1:]}: rc {rc}, {err[-400:]!r}")
            continue
        foreign = named_flags(lines[0]) - own
        if foreign:
            problems.append(f"{sorted(foreign)} not options of `{name}`: {lines[0]}")
    assert not problems, "\n".join(problems)


def test_a_hand_edited_plan_file_is_blamed_not_the_weights_flag(tmp_path, capsys, monkeypatch, one_thread, tiny_generator_dir,
                                                                 tiny_discriminator_dir, tiny_real_data_dir):
    """Weights that no longer sum to 1 in a plan file: the line names the file and the row, not --weights."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    models = ["--generator", str(tiny_generator_dir), "--discriminator", str(tiny_discriminator_dir),
              "--real-data", str(tiny_real_data_dir)]
    plan = tmp_path / "plan.parquet"
    assert main(["plan", *models, "--pairs", "2", "--per-identity", "1", "--out", str(plan), "--no-progress"]) == 0
    table = pq.read_table(plan)
    weights = table.column("weights").to_pylist()
    weights[1] = [0.7, 0.7]
    table = table.set_column(table.schema.get_field_index("weights"), "weights", pa.array(weights, pa.list_(pa.float64())))
    pq.write_table(table, plan)
    capsys.readouterr()
    assert main(["build", *models, "--plan", str(plan), "--steps", "1", "--out", str(tmp_path / "ds"), "--no-progress"]) == 2
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("error:"))
    assert str(plan) in line and "row 1" in line and "--weights" not in line, line
    assert named_flags(line) <= options(commands()["build"]) and "--allow-nonconvex" in line, line


def test_an_architecture_value_from_a_model_folder_is_blamed_on_its_config(tmp_path):
    """A bad image_size in the --init folder's config.json: the line names that file and --init, not --image-size."""
    import json

    from scoremix_ds.discriminators.loading import SmallCNN, load_discriminator

    folder = tmp_path / "disc"
    SmallCNN(in_channels=1, image_size=8, embedding_dim=16).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "image_size": 12}))
    with pytest.raises(ScoreMixError) as info:
        load_discriminator(str(folder), flag="init")
    line = error_line(info.value, ["train"])
    assert str(folder / "config.json") in line and "--init" in line and "--image-size" not in line, line
