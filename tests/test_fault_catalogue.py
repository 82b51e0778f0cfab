"""The fault catalogue: what an adversarial user does to every command, and what each case must get back.

Every case runs the real CLI in-process (``scoremix_ds.cli.main``) on tiny models and data made in code, and
asserts: the documented exit code (2), at most 3 lines of output (log lines aside), no traceback, the message
names the file or the flag at fault, and every file that existed before is byte-identical after (the whole tree
is hashed before and after). Subprocesses only where they are the point: two concurrent builds, a server that
echoes the Authorization header, an unreachable Hub (huggingface_hub reads HF_ENDPOINT at import time).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hubfixtures import REPO_ROOT, build_tiny, local_rows, make_tiny_inputs
from PIL import Image

from scoremix_ds.cli import main

LOG_LINE = (" INFO ", " WARNING ", " DEBUG ")


# ---------------------------------------------------------------------------------------------- shared world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny generator / discriminator / real data, a finished build (one identity per shard), two job-array parts,
    an image-folder copy of the real data, and a trained tiny recognition model."""
    root = tmp_path_factory.mktemp("world")
    inputs = make_tiny_inputs(root)
    torch.set_num_threads(1)
    build_tiny(inputs, root / "build", shard_size=1)
    for i in range(2):
        build_tiny(inputs, root / f"part{i}", shard_size=1, shard=i, num_shards=2)
    folder = root / "real-images"
    for c in range(4):
        (folder / str(c)).mkdir(parents=True)
        for j in range(3):
            Image.fromarray(np.full((8, 8), 40 + 60 * c + j, np.uint8), mode="L").save(folder / str(c) / f"{j}.png")
    return {"root": root, **inputs, "build": root / "build", "parts": [root / "part0", root / "part1"],
            "images": folder}


def command_options(name: str) -> set[str]:
    import typer

    from scoremix_ds.cli import app

    command = typer.main.get_command(app).commands[name]
    return {opt for p in command.params for opt in getattr(p, "opts", []) if opt.startswith("--")}


def tree_hash(*roots: Path) -> dict[str, str]:
    found = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if p.is_file() and not p.is_symlink():
                found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst) if Path(src).is_dir() else shutil.copy2(src, dst)
    return dst


def build_args(w, out: Path, *extra: str) -> list[str]:
    return ["build", "--generator", w["generator"], "--discriminator", w["discriminator"], "--real-data", w["real_data"],
            "--pairs", "2", "--per-identity", "1", "--steps", "2", "--batch-size", "8", "--out", str(out),
            "--no-progress", *extra]


def train_args(w, out: Path, *extra: str) -> list[str]:
    return ["train", "--real", w["real_data"], "--backbone", "small-cnn", "--embedding-dim", "8", "--image-size", "8",
            "--channels", "1", "--no-flip", "--steps", "1", "--batch-size", "8", "--checkpoint-every", "0",
            "--out", str(out), "--no-progress", *extra]


def flip_bit(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


_BOMB: list[bytes] = []


def bomb_png(path: Path) -> None:
    """A small valid PNG whose 20000 x 20000 pixels exceed what PIL decodes (DecompressionBombError)."""
    if not _BOMB:
        buf = io.BytesIO()
        Image.new("1", (20000, 20000)).save(buf, format="PNG")
        _BOMB.append(buf.getvalue())
    path.write_bytes(_BOMB[0])


# ------------------------------------------------------------------------------------------------- the cases
# Each case: (id, setup(w, tmp) -> (argv, needles)); needles: strings of which the error line must hold one.

def _gen(w, tmp, damage):
    g = copy(Path(w["generator"]), tmp / "gen")
    damage(g)
    return build_args(w, tmp / "out", "--generator", str(g)), [str(g)]


def _disc(w, tmp, damage, flag="--discriminator", cmd=None):
    d = copy(Path(w["discriminator"]), tmp / "disc")
    damage(d)
    argv = cmd(w, tmp, d) if cmd else build_args(w, tmp / "out", flag, str(d))
    return argv, [str(d)]


def _plan(w, tmp, change):
    import pyarrow as pa
    import pyarrow.parquet as pq

    plan = tmp / "plan.parquet"
    assert main(["plan", "--generator", w["generator"], "--discriminator", w["discriminator"], "--real-data",
                 w["real_data"], "--pairs", "2", "--per-identity", "1", "--out", str(plan)]) == 0
    table = pq.read_table(plan)
    table = change(table, pa)
    pq.write_table(table, plan)
    (tmp / "plan.png").unlink()
    return build_args(w, tmp / "out", "--plan", str(plan)), [str(plan)]


def _null_column(table, pa):
    seeds = pa.array([None] * table.num_rows, type=table.schema.field("seeds").type)
    return table.set_column(table.schema.get_field_index("seeds"), "seeds", seeds)


def _bad_meta(table, pa):
    meta = json.loads(table.schema.metadata[b"scoremix"])
    meta["classes"] = "abc"
    return table.replace_schema_metadata({"scoremix": json.dumps(meta)})


def _foreign_out(w, tmp, argv_of, name="README.md"):
    out = tmp / "out"
    out.mkdir()
    (out / name).write_text("the user's own file\n")
    return argv_of(w, out), ["--out"]


def _file_out(w, tmp, argv_of):
    out = tmp / "out"
    out.write_text("a user's file\n")
    return argv_of(w, out), ["--out"]


def _shard_of(folder: Path, config="mix", i=1) -> Path:
    return folder / "data" / config / f"train-{i:05d}.parquet"


def _merge_damaged(w, tmp, damage):
    parts = [copy(p, tmp / p.name) for p in w["parts"]]
    shard = sorted((parts[1] / "data" / "mix").glob("*.parquet"))[0]
    damage(shard)
    return ["merge", str(parts[0]), str(parts[1]), "--out", str(tmp / "merged")], [str(shard)]


def _status_damaged(w, tmp, damage):
    b = copy(w["build"], tmp / "b")
    damage(_shard_of(b))
    return ["status", str(b), "--verify"], [str(_shard_of(b))]


def _manifest(w, tmp, cmd, text):
    b = copy(w["build"], tmp / "b")
    (b / "manifest.json").write_text(text)
    return cmd(b), [str(b / "manifest.json")]


def _eval_args(model, out, *extra):
    return ["eval", str(model), "--benchmark", "heldout:__REAL__:20", "--batch-size", "8", "--out", str(out), *extra]


def _eval(w, argv):
    return [a.replace("__REAL__", w["real_data"]) for a in argv]


def _corrupt_image_folder(w, tmp, how):
    folder = copy(w["images"], tmp / "images")
    bad = folder / "2" / "1.png"
    if how == "bomb":
        bomb_png(bad)
    else:
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 4)
    return folder, bad


def _audit_bad_image(w, tmp, how):
    """A build whose shard holds an undecodable image, consistently hashed (as if made that way elsewhere)."""
    import datasets

    from scoremix_ds.dataset.manifest import Manifest, file_sha256

    b = copy(w["build"], tmp / "b")
    shard = _shard_of(b, "mix", 0)
    ds = datasets.Dataset.from_parquet(str(shard))
    buf = io.BytesIO()
    if how == "bomb":
        bomb_png(tmp / "bomb.png")
        buf.write((tmp / "bomb.png").read_bytes())
    else:
        buf.write(b"\x89PNG\r\n\x1a\nnot really")
    rows = ds.cast_column("image", datasets.Image(decode=False)).to_dict()
    rows["image"] = [{"bytes": buf.getvalue(), "path": None} for _ in rows["image"]]
    datasets.Dataset.from_dict(rows, features=ds.features).to_parquet(str(shard))
    m = Manifest.read(b)
    m.shards["mix"]["data/mix/train-00000.parquet"]["sha256"] = file_sha256(shard)
    m.write(b)
    return ["audit", str(b), "--no-update-card"], [str(shard), "image"]


def _train_generator_corrupt(w, tmp):
    """Most images of the folder do not decode: the first batch meets one (train-generator has no --skip-corrupt)."""
    folder, _ = _corrupt_image_folder(w, tmp, "garbage")
    for png in folder.glob("[123]/*.png"):
        png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 4)
    return (["train-generator", "--real-data", str(folder), "--image-size", "8", "--steps", "1", "--batch-size", "8",
             "--out", str(tmp / "g"), "--no-progress"], [str(folder), ".png"])


def _eval_report_as_out(w, tmp):
    """An eval report folder given to train as --out: another command's output is foreign too."""
    report = tmp / "report"
    assert main(_eval(w, _eval_args(w["discriminator"], report))) == 0
    return train_args(w, report), ["--out"]


def _pickle_checkpoint(w, tmp):
    """A finished 2-step training whose step-1 checkpoint's optimizer state is replaced by a pickle payload."""

    class Payload:
        def __reduce__(self):
            return (print, ("PAYLOAD RAN",))

    out = tmp / "run"
    args = train_args(w, out, "--steps", "2", "--checkpoint-every", "1")
    assert main(args) == 0
    ckpts = sorted((out / "checkpoints").iterdir())
    shutil.rmtree(ckpts[-1])
    (out / "model.safetensors").unlink()
    state = ckpts[0] / "state-rank0.pt"
    state.write_bytes(pickle.dumps({"optimizer": Payload()}))
    return args, [str(state)]


CASES = {
    # build: values that cannot be right
    "build-guidance-nan": lambda w, t: (build_args(w, t / "out", "--guidance", "nan"), ["--guidance"]),
    "build-guidance-inf": lambda w, t: (build_args(w, t / "out", "--guidance", "inf"), ["--guidance"]),
    "build-guidance-negative": lambda w, t: (build_args(w, t / "out", "--guidance", "-1"), ["--guidance"]),
    "build-window-without-schedule": lambda w, t: (build_args(w, t / "out", "--window-end", "0.5"), ["--weight-schedule"]),
    "build-window-nan": lambda w, t: (build_args(w, t / "out", "--weight-schedule", "window", "--window-start", "nan"),
                                      ["--window-start"]),
    "build-weights-nan": lambda w, t: (build_args(w, t / "out", "--weights", "nan,0.5"), ["--weights"]),
    "build-pairs-zero": lambda w, t: (build_args(w, t / "out", "--pairs", "0"), ["--pairs"]),
    "build-device-unknown": lambda w, t: (build_args(w, t / "out", "--device", "gpu0"), ["--device"]),
    "build-device-cuda-absent": lambda w, t: (build_args(w, t / "out", "--device", "cuda"), ["--device"]),
    "build-generator-revision-in-id": lambda w, t: (build_args(w, t / "out", "--generator", "ORG/NAME@REV"), ["ORG/NAME", "revision REV", "--generator"]),
    # build: damaged model folders
    "build-generator-truncated-safetensors": lambda w, t: _gen(w, t, lambda g: truncate(g / "unet" / "diffusion_pytorch_model.safetensors")),
    "build-generator-bad-json-meta": lambda w, t: _gen(w, t, lambda g: (g / "scoremix.json").write_text("{not json")),
    "build-generator-meta-wrong-types": lambda w, t: _gen(w, t, lambda g: (g / "scoremix.json").write_text(
        json.dumps({"num_classes": "four", "null_class": 4, "class_names": ["a", "b", "c", "d"]}))),
    "build-generator-too-few-class-names": lambda w, t: _gen(w, t, lambda g: (g / "scoremix.json").write_text(
        json.dumps({"num_classes": 4, "null_class": 4, "class_names": ["a"]}))),
    "build-generator-bad-unet-config": lambda w, t: _gen(w, t, lambda g: (g / "unet" / "config.json").write_text("{")),
    "build-discriminator-truncated-safetensors": lambda w, t: _disc(w, t, lambda d: truncate(d / "model.safetensors")),
    "build-discriminator-bad-config": lambda w, t: _disc(w, t, lambda d: (d / "config.json").write_text("[1,")),
    "build-weak-generator-missing": lambda w, t: (build_args(w, t / "out", "--guidance", "2", "--weak-generator",
                                                             str(t / "nope")), ["--weak-generator"]),
    # build: damaged real data
    "build-real-data-corrupt-png": lambda w, t: (lambda f: (build_args(w, t / "out", "--real-data", str(f[0])), [str(f[1])]))(
        _corrupt_image_folder(w, t, "garbage")),
    "build-real-data-decompression-bomb": lambda w, t: (lambda f: (build_args(w, t / "out", "--real-data", str(f[0])), [str(f[1])]))(
        _corrupt_image_folder(w, t, "bomb")),
    # build: output folders
    "build-out-foreign-file": lambda w, t: _foreign_out(w, t, lambda w, o: build_args(w, o)),
    "build-out-is-a-file": lambda w, t: _file_out(w, t, lambda w, o: build_args(w, o)),
    "build-out-manifest-bad-json": lambda w, t: _manifest(w, t, lambda b: build_args(w, b), "{oops"),
    "build-out-manifest-foreign-keys": lambda w, t: _manifest(w, t, lambda b: build_args(w, b), json.dumps({"name": "x"})),
    "build-out-manifest-wrong-types": lambda w, t: _manifest(w, t, lambda b: build_args(w, b), json.dumps(
        {"fingerprint": 3, "config": [], "package_version": "0"})),
    # build: plan files
    "build-plan-nulls": lambda w, t: _plan(w, t, _null_column),
    "build-plan-metadata-types": lambda w, t: _plan(w, t, _bad_meta),
    "build-plan-not-parquet": lambda w, t: ((lambda p: (p.write_text("id,parents\n"), (build_args(w, t / "out", "--plan", str(p)), [str(p)]))[1])(t / "plan.parquet")),
    "build-plan-missing": lambda w, t: (build_args(w, t / "out", "--plan", str(t / "none.parquet")), ["--plan", "none.parquet"]),
    # train
    "train-learning-rate-nan": lambda w, t: (train_args(w, t / "out", "--learning-rate", "nan"), ["--learning-rate"]),
    "train-learning-rate-negative": lambda w, t: (train_args(w, t / "out", "--learning-rate", "-0.1"), ["--learning-rate"]),
    "train-scale-inf": lambda w, t: (train_args(w, t / "out", "--scale", "inf"), ["--scale"]),
    "train-margin-nan": lambda w, t: (train_args(w, t / "out", "--margin", "nan"), ["--margin"]),
    "train-sample-rate-nan": lambda w, t: (train_args(w, t / "out", "--sample-rate", "nan"), ["--sample-rate"]),
    "train-synthetic-ratio-nan": lambda w, t: (train_args(w, t / "out", "--synthetic", str(w["build"]), "--synthetic-ratio", "nan"),
                                               ["--synthetic-ratio"]),
    "train-device-cuda-absent": lambda w, t: (train_args(w, t / "out", "--device", "cuda"), ["--device"]),
    "train-device-unknown": lambda w, t: (train_args(w, t / "out", "--device", "tpu9"), ["--device"]),
    "train-out-users-readme": lambda w, t: _foreign_out(w, t, lambda w, o: train_args(w, o)),
    "train-out-is-a-file": lambda w, t: _file_out(w, t, lambda w, o: train_args(w, o)),
    "train-out-holds-eval-report": lambda w, t: _eval_report_as_out(w, t),
    "train-init-truncated-safetensors": lambda w, t: _disc(w, t, lambda d: truncate(d / "model.safetensors"),
                                                           cmd=lambda w, t, d: train_args(w, t / "out", "--init", str(d))),
    "train-init-missing": lambda w, t: (train_args(w, t / "out", "--init", str(t / "nope")), ["--init"]),
    "train-init-bad-config": lambda w, t: _disc(w, t, lambda d: (d / "config.json").write_text("{"),
                                                cmd=lambda w, t, d: train_args(w, t / "out", "--init", str(d))),
    "train-real-corrupt-png": lambda w, t: (lambda f: (train_args(w, t / "out", "--real", str(f[0])), [str(f[1]), "--skip-corrupt"]))(
        _corrupt_image_folder(w, t, "garbage")),
    "train-checkpoint-pickle-payload": lambda w, t: _pickle_checkpoint(w, t),
    # train-generator
    "train-generator-learning-rate-nan": lambda w, t: (["train-generator", "--real-data", w["real_data"], "--image-size", "8",
                                                        "--learning-rate", "nan", "--out", str(t / "g")], ["--learning-rate"]),
    "train-generator-real-corrupt-png": lambda w, t: _train_generator_corrupt(w, t),
    "train-generator-out-foreign": lambda w, t: _foreign_out(w, t, lambda w, o: ["train-generator", "--real-data", w["real_data"],
                                                                               "--steps", "1", "--out", str(o)]),
    # eval
    "eval-model-truncated-safetensors": lambda w, t: _disc(w, t, lambda d: truncate(d / "model.safetensors"),
                                                           cmd=lambda w, t, d: _eval(w, _eval_args(d, t / "ev"))),
    "eval-model-bad-config": lambda w, t: _disc(w, t, lambda d: (d / "config.json").write_text("nope"),
                                                cmd=lambda w, t, d: _eval(w, _eval_args(d, t / "ev"))),
    "eval-out-foreign-results": lambda w, t: _foreign_out(w, t, lambda w, o: _eval(w, _eval_args(w["discriminator"], o)),
                                                          name="results.json"),
    "eval-out-is-a-file": lambda w, t: _file_out(w, t, lambda w, o: _eval(w, _eval_args(w["discriminator"], o))),
    "eval-device-cuda-absent": lambda w, t: (_eval(w, _eval_args(w["discriminator"], t / "ev", "--device", "cuda")), ["--device"]),
    "eval-batch-size-zero": lambda w, t: (_eval(w, _eval_args(w["discriminator"], t / "ev", "--batch-size", "0")), ["--batch-size"]),
    # plan
    "plan-out-unrelated-parquet": lambda w, t: (lambda p: (copy(_shard_of(w["build"]), p),
                                                           (["plan", "--generator", w["generator"], "--discriminator", w["discriminator"],
                                                             "--real-data", w["real_data"], "--pairs", "2", "--out", str(p)], ["--out"]))[1])(t / "mine.parquet"),
    "plan-histogram-name-taken": lambda w, t: (lambda p: ((t / "p.png").write_bytes(b"user's picture"),
                                                          (["plan", "--generator", w["generator"], "--discriminator", w["discriminator"],
                                                            "--real-data", w["real_data"], "--pairs", "2", "--out", str(p)], ["--out"]))[1])(t / "p.parquet"),
    "plan-out-is-a-folder": lambda w, t: (lambda p: (p.mkdir(), (["plan", "--generator", w["generator"], "--discriminator", w["discriminator"],
                                                                  "--real-data", w["real_data"], "--out", str(p)], ["--out"]))[1])(t / "dir"),
    # merge
    "merge-part-bit-flip": lambda w, t: _merge_damaged(w, t, flip_bit),
    "merge-part-truncated": lambda w, t: _merge_damaged(w, t, truncate),
    "merge-part-shard-missing": lambda w, t: _merge_damaged(w, t, lambda p: p.unlink()),
    "merge-part-manifest-bad-json": lambda w, t: (lambda ps: ((ps[1] / "manifest.json").write_text("{"),
                                                              (["merge", str(ps[0]), str(ps[1]), "--out", str(t / "m")], [str(ps[1] / "manifest.json")]))[1])(
        [copy(p, t / p.name) for p in w["parts"]]),
    "merge-out-not-empty": lambda w, t: (lambda o: ((o.mkdir(), (o / "x").write_text("x")),
                                                    (["merge", *map(str, w["parts"]), "--out", str(o)], ["--out"]))[1])(t / "m"),
    # status
    "status-verify-bit-flip": lambda w, t: _status_damaged(w, t, flip_bit),
    "status-verify-bit-flip-early": lambda w, t: _status_damaged(w, t, lambda p: flip_bit(p, 0.1)),
    "status-verify-truncated": lambda w, t: _status_damaged(w, t, truncate),
    "status-not-a-build": lambda w, t: (lambda d: (d.mkdir(), (["status", str(d)], [str(d)]))[1])(t / "empty"),
    "status-manifest-wrong-types": lambda w, t: _manifest(w, t, lambda b: ["status", str(b)], json.dumps(
        {"fingerprint": "x", "config": {}, "package_version": "0", "shards": {"mix": {"../../etc/passwd": {"rows": 1, "sha256": "0"}}}})),
    # push (verified before anything reaches the network)
    "push-bit-flipped-shard": lambda w, t: (lambda b: (flip_bit(_shard_of(b)), (["push", str(b), "--repo", "org/x", "--token", "hf_dummy_token_123"],
                                                                              ["train-00001.parquet"]))[1])(copy(w["build"], t / "b")),
    "push-part-folder": lambda w, t: (["push", str(copy(w["parts"][0], t / "p")), "--repo", "org/x"], ["merge"]),
    "push-bad-repo-id": lambda w, t: (["push", str(copy(w["build"], t / "b")), "--repo", "not a repo"], ["--repo"]),
    # audit
    "audit-shard-corrupt-png": lambda w, t: _audit_bad_image(w, t, "garbage"),
    "audit-shard-decompression-bomb": lambda w, t: _audit_bad_image(w, t, "bomb"),
    "audit-not-a-build": lambda w, t: (lambda d: (d.mkdir(), (["audit", str(d)], [str(d)]))[1])(t / "empty"),
    # align
    "align-other-discriminator-truncated": lambda w, t: _disc(w, t, lambda d: truncate(d / "model.safetensors"),
                                                              cmd=lambda w, t, d: ["align", "--generator", w["generator"], "--discriminator",
                                                                                   w["discriminator"], "--real-data", w["real_data"],
                                                                                   "--other-discriminator", str(d)]),
    "align-other-discriminator-missing": lambda w, t: (["align", "--generator", w["generator"], "--discriminator",
                                                        w["discriminator"], "--real-data", w["real_data"],
                                                        "--other-discriminator", str(t / "nope")], ["--other-discriminator"]),
    "align-generator-bad-json": lambda w, t: (lambda g: (["align", "--generator", str(g), "--discriminator", w["discriminator"],
                                                          "--real-data", w["real_data"]], [str(g)]))(
        (lambda g: ((g / "scoremix.json").write_text("{"), g)[1])(copy(Path(w["generator"]), t / "gen"))),
    # reproduce
    "reproduce-out-users-report": lambda w, t: _foreign_out(w, t, lambda w, o: ["reproduce", "reproduce-ci", "--out", str(o)],
                                                            name="report.md"),
    "reproduce-recipe-missing": lambda w, t: (["reproduce", str(t / "nope.toml")], ["nope.toml"]),
    # versions
    "versions-bad-repo-id": lambda w, t: (["versions", "not/a/repo"], ["not/a/repo"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fault(case, world, tmp_path, capsys, one_thread, monkeypatch):
    if "cuda-absent" in case and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    monkeypatch.chdir(tmp_path)
    argv, needles = CASES[case](world, tmp_path)
    capsys.readouterr()
    before = tree_hash(tmp_path, world["root"])
    rc = main(argv)
    cap = capsys.readouterr()
    text = cap.out + cap.err
    lines = [line for line in text.splitlines() if line.strip() and not any(t in line for t in LOG_LINE)]
    assert rc == 2, text[-3000:]
    assert "Traceback" not in text and "PAYLOAD RAN" not in text and "weights_only=False" not in text, text[-3000:]
    assert len(lines) <= 3, text[-3000:]
    error = next(line for line in lines if line.startswith("error:"))
    assert any(n in error for n in needles), (needles, error)
    # what the hint tells the user to pass / use / check / set is a flag this command really has
    told = set(re.findall(r"\b(?:pass|use|check|set|add|drop)\s+(--[a-z][a-z0-9-]*)", re.sub(r"`[^`]*`", "", error)))
    assert told <= command_options(argv[0]), (told - command_options(argv[0]), error)
    after = tree_hash(tmp_path, world["root"])
    changed = sorted(p for p, digest in before.items() if after.get(p) != digest)
    assert not changed, changed


# ------------------------------------------------------------------------- integrity: detect, repair, refuse


def test_damaged_shards_are_repaired_by_a_rerun_to_identical_rows(world, tmp_path, one_thread):
    b = copy(world["build"], tmp_path / "b")
    flip_bit(_shard_of(b, "mix", 1))
    truncate(_shard_of(b, "repro", 2))
    _shard_of(b, "mix", 0).unlink()
    assert main(["status", str(b), "--verify"]) == 2
    untouched = {p: p.read_bytes() for p in (_shard_of(b, "mix", 2), _shard_of(b, "repro", 0))}
    argv = ["build", "--generator", world["generator"], "--discriminator", world["discriminator"], "--real-data",
            world["real_data"], "--pairs", "3", "--per-identity", "2", "--steps", "2", "--batch-size", "8",
            "--shard-size", "1", "--out", str(b), "--no-progress"]
    assert main(argv) == 0
    assert main(["status", str(b), "--verify"]) == 0
    for config in ("mix", "repro"):
        assert local_rows(b, config) == local_rows(world["build"], config)
    assert all(p.read_bytes() == data for p, data in untouched.items())  # intact units were not re-sampled
    assert not (b / ".scoremix").exists() and not (b / ".scoremix-lock").exists()


def test_merge_leaves_a_folder_named_like_its_staging_alone(world, tmp_path):
    users = tmp_path / ".merged.merging"  # the fixed temporary name merge used to rmtree
    users.mkdir()
    (users / "keep.txt").write_text("mine")
    assert main(["merge", *map(str, world["parts"]), "--out", str(tmp_path / "merged")]) == 0
    assert (users / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".merged.merging", "merged"]
    assert main(["status", str(tmp_path / "merged"), "--verify"]) == 0


# ----------------------------------------------------------------------------------- disks and permissions


def _can_mount_tmpfs(target: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    target.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)], capture_output=True).returncode == 0
    return ok


def test_full_disk_is_one_line_and_leaves_nothing_half_written(world, tmp_path, capsys, one_thread):
    disk = tmp_path / "small-disk"
    if not _can_mount_tmpfs(disk):
        pytest.skip("needs root and a working `mount -t tmpfs` for a small disk")
    try:
        out = disk / "out"
        rc = main(build_args(world, out, "--pairs", "6", "--per-identity", "4", "--shard-size", "1"))
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip() and not any(t in line for t in LOG_LINE)]
        assert rc == 2 and "Traceback" not in err and len(lines) <= 3, err[-3000:]
        assert "no space left" in lines[-1] and str(out) in lines[-1] and "--out" in lines[-1]
        assert not [p for p in disk.rglob("*") if p.name.endswith(".scoremix-tmp") or p.name == "preview.png"]
    finally:
        busy = subprocess.run(["umount", str(disk)], capture_output=True, text=True)
        if busy.returncode:  # a file left open on the full disk: a leak
            subprocess.run(["umount", "-l", str(disk)], check=False)
    assert busy.returncode == 0, busy.stderr


def test_read_only_output_folder_is_one_line(world, tmp_path, capsys, one_thread):
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)],
                                                   capture_output=True).returncode == 0
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root ignores permissions and tmpfs cannot be mounted here")
        ro.chmod(0o555)
    try:
        rc = main(build_args(world, ro / "out"))
        err = capsys.readouterr().err
        line = [x for x in err.splitlines() if x.startswith("error:")]
        assert rc == 2 and "Traceback" not in err and len(line) == 1, err[-3000:]
        assert str(ro / "out") in line[0] and ("read-only" in line[0] or "permission denied" in line[0])
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=False)
        else:
            ro.chmod(0o755)


# --------------------------------------------------------------------------------------------- concurrency


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    full = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "scoremix_ds", *args], cwd=REPO_ROOT, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_a_second_build_into_the_same_out_is_refused_in_one_line(world, tmp_path):
    out = tmp_path / "out"
    args = build_args(world, out, "--pairs", "6", "--per-identity", "2", "--shard-size", "1")
    first = _cli(*args)
    deadline = time.time() + 120
    lock = out / ".scoremix-lock"
    while not (lock.exists() and lock.read_text().strip()) and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)  # the lock is held once it names its holder
    # Freeze the first build while it holds the lock, so the second surely meets it (no race on timing).
    os.kill(first.pid, signal.SIGSTOP)
    try:
        assert first.poll() is None, first.communicate()
        second = _cli(*args)
        _, err2 = second.communicate(timeout=300)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1[-3000:]
    errors = [line for line in err2.splitlines() if line.startswith("error:")]
    assert second.returncode == 2 and len(errors) == 1 and "Traceback" not in err2, err2[-3000:]
    assert "in use by process" in errors[0] and str(out) in errors[0]
    assert main(["status", str(out), "--verify"]) == 0
    assert not (out / ".scoremix").exists() and not (out / ".scoremix-lock").exists()  # no stray unit marker


def test_a_build_meeting_a_held_lock_and_a_write_in_flight_is_told_in_use(world, tmp_path, capsys, one_thread):
    """The first build frozen between its manifest's temporary and the rename (the test above freezes it at a
    chance instant, and under load it once landed there): the second must still say "in use", not "foreign"."""
    from scoremix_ds.core.outputs import TMP_SUFFIX, OutputLock

    out = tmp_path / "out"
    held = OutputLock(out).acquire()  # flock conflicts between two opens of the file, even in one process
    try:
        (out / f".manifest.json.k2x9{TMP_SUFFIX}").write_text("{")
        capsys.readouterr()
        assert main(build_args(world, out)) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"in use by process {os.getpid()}" in errors[0], errors
    finally:
        held.release()
    assert sorted(p.name for p in out.iterdir()) == [f".manifest.json.k2x9{TMP_SUFFIX}"]  # nothing else written


def test_a_lock_of_a_dead_process_is_taken_over(world, tmp_path, one_thread):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".scoremix-lock").write_text("999999\n")  # left by a killed run: nobody holds the flock
    assert main(build_args(world, out)) == 0
    assert not (out / ".scoremix-lock").exists()


# ---------------------------------------------------------------------------------------------- the Hub


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    """A misbehaving server: answers 500 with the request's headers (Authorization included) in the body."""

    def _echo(self):
        body = json.dumps({"error": f"boom; you sent {dict(self.headers)}"}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Message", f"echo {self.headers.get('Authorization')}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _echo

    def log_message(self, *args):
        pass


def test_debug_traceback_never_shows_the_token_a_server_echoes(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = "hf_EchoedSecretToken1234567890"
    try:
        env = {"HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HOME": str(tmp_path / "hf"),
               "HF_HUB_OFFLINE": "0", "SCOREMIX_DEBUG": "1", "HF_HUB_ETAG_TIMEOUT": "2"}
        proc = _cli("versions", "org/data", "--token", token, env=env)
        out, err = proc.communicate(timeout=120)
    finally:
        server.shutdown()
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" in err  # SCOREMIX_DEBUG=1 shows it...
    assert token not in out + err and token[3:] not in out + err  # ...with the token redacted everywhere


def test_an_unreachable_hub_fails_fast_in_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    started = time.perf_counter()
    proc = _cli("versions", "org/data", "--token", "hf_dummy_token_123", env=env)
    out, err = proc.communicate(timeout=120)
    seconds = time.perf_counter() - started
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert "could not reach the Hub" in errors[0]
    assert seconds < 20, seconds


def test_redaction_masks_tokens_and_auth_headers_but_not_settings():
    from scoremix_ds.cli.boundary import redact

    text = ("headers={'Authorization': 'Bearer hf_AbCdEf1234567890'} HF_HOME=/x HF_DATASETS_CACHE=/y "
            "token=my-own-secret authorization: basic dXNlcjpwYXNz")
    masked = redact(text, ["my-own-secret"])
    assert "hf_AbCdEf1234567890" not in masked and "my-own-secret" not in masked and "dXNlcjpwYXNz" not in masked
    assert "HF_HOME=/x" in masked and "HF_DATASETS_CACHE=/y" in masked


def test_config_fields_become_the_commands_flags_or_recipe_keys():
    from scoremix_ds.cli.boundary import for_command
    from scoremix_ds.core.errors import ConfigError
    from scoremix_ds.training.generator_config import GeneratorTrainConfig

    with pytest.raises(ConfigError) as info:
        GeneratorTrainConfig(ema_decay=float("nan"))
    assert info.value.field == "ema_decay" and "ema_decay" in info.value.message  # the library names the field
    cli = for_command(info.value, ["train-generator"])
    assert "ema_decay" in cli.message and "--recipe" in cli.hint  # no flag for it: a key of the recipe file
    with pytest.raises(ConfigError) as info:
        GeneratorTrainConfig(learning_rate=float("nan"))
    assert "--" not in str(info.value)  # the library names no flag...
    cli = for_command(info.value, ["train-generator", "--learning-rate", "nan"])
    assert cli.message.startswith("--learning-rate must be a finite number")  # ...the command names its own
