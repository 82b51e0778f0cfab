"""``scoremix-ds eval`` end to end on the embedded default discriminator, and what ``--benchmark`` accepts.

The held-out numbers are real: the default model never saw the 500 digits of ``mnist-5k-heldout``. A ``.bin``
written here from the same pairs must give the same metrics through the restricted reader and JPEG-free (PNG)
decoding. The malicious ``.bin`` is real too: a control shows ``pickle.loads`` of it creates the file.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import typer
from PIL import Image

from fixtures.images import png_bytes, random_images
from scoremix_ds import cli
from scoremix_ds.cli import eval_cmd
from scoremix_ds.sources.openers import read_real_data
from scoremix_ds.core.errors import ConfigError, DataError
from scoremix_ds.evaluation.verification_pairs import VerificationPairs, make_pairs_from_labels
from scoremix_ds.evaluation.runner import HeldOutSet, IJBSet
from scoremix_ds.evaluation.specs import (
    DEFAULT_PAIRS,
    BenchmarkSpec,
    benchmarks_from,
    load_benchmark,
    max_balanced_pairs,
    parse_benchmark,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # bit-exact comparisons, and fair on a shared machine


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    """``scoremix-ds eval ...`` through ``cli.main`` (one-line errors, exit codes). Until ``eval`` is registered on
    the real app, a test-local Typer app with the same command stands in for it (a callback keeps it a group)."""
    monkeypatch.chdir(tmp_path)
    if not any(c.name == "eval" for c in cli.app.registered_commands):
        app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        app.callback()(lambda: None)
        app.command("eval")(eval_cmd.eval_model)
        monkeypatch.setattr(cli, "app", app)

    def call(*args: str) -> tuple[int, str, str]:
        rc = cli.main(["eval", *args])
        captured = capsys.readouterr()
        return rc, captured.out, captured.err

    return call


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# ---- parsing (no model, no data) ----------------------------------------------------------------------------------

def test_parse_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lfw.bin").write_bytes(b"")
    (tmp_path / "pairs-folder").mkdir()
    (tmp_path / "IJB_C").mkdir()
    cases = {
        "lfw.bin": ("bin", "lfw.bin", None, DEFAULT_PAIRS),
        "mnist-5k-heldout": ("heldout", "mnist-5k-heldout", None, DEFAULT_PAIRS),
        "mnist-5k-heldout[7-9]": ("heldout", "mnist-5k-heldout[7-9]", None, DEFAULT_PAIRS),
        "heldout:mnist-5k-heldout[7-9]:300": ("heldout", "mnist-5k-heldout[7-9]", None, 300),
        "mnist-5k-heldout:300": ("heldout", "mnist-5k-heldout", None, 300),
        "heldout:org/faces@v2:500": ("heldout", "org/faces", "v2", 500),
        "org/faces[0-9]@v2": ("heldout", "org/faces[0-9]", "v2", DEFAULT_PAIRS),
        "pairs-folder": ("pairs", "pairs-folder", None, DEFAULT_PAIRS),
        "org/lfw-pairs@v1": ("pairs", "org/lfw-pairs", "v1", DEFAULT_PAIRS),
        "ijbc:IJB_C": ("ijb", "IJB_C", None, DEFAULT_PAIRS),
    }
    for text, (kind, target, revision, num_pairs) in cases.items():
        spec = parse_benchmark(text)
        assert (spec.kind, spec.target, spec.revision, spec.num_pairs) == (kind, target, revision, num_pairs), text
    assert parse_benchmark("pairs:org/lfw@main:validation").split == "validation"
    assert parse_benchmark("org/lfw").split == "test"
    assert parse_benchmark("ijbb:IJB_C").name == "ijbb"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("lfw", "unknown `benchmark` 'lfw'"),
        ("", "benchmark is empty"),
        ("lfw:x", "unknown kind 'lfw'"),
        ("missing.bin", "no such .bin file"),
        ("heldout:mnist-5k-heldout:many", "PAIRS 'many' is not a whole number"),
        ("heldout:mnist-5k-heldout:1", "PAIRS must be at least 2"),
        ("ijbc:no-such-folder", "is not a folder"),
        ("tinyface:anything", "TinyFace is not supported"),
        ("mnist-5k", "both a data name and a path"),  # a folder named like a data name: ambiguous
        ("notes.txt", "is a file but not a .bin"),
    ],
)
def test_parse_refusals_name_the_flag(tmp_path, monkeypatch, text, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist-5k").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="benchmark") as info:  # the library names the field; eval its flag
        parse_benchmark(text)
    assert needle in info.value.message and "\n" not in str(info.value) and info.value.field == "benchmark"


def test_max_balanced_pairs_is_the_limit_of_make_pairs():
    labels = np.repeat(np.arange(3), [2, 2, 1])  # G = 2 genuine, I = 10 - 2 = 8 impostor pairs: at most 2G + 1 = 5
    assert max_balanced_pairs(labels) == 5
    assert len(make_pairs_from_labels(labels, 5, seed=0)[0]) == 5
    with pytest.raises(DataError):
        make_pairs_from_labels(labels, 6, seed=0)
    many_genuine = np.zeros(5, dtype=int)  # G = 10, I = 0: no impostor pair at all
    assert max_balanced_pairs(many_genuine) == 0


def test_load_heldout_pairs_dataset_and_ijb(tmp_path):
    import datasets

    held = load_benchmark(parse_benchmark("heldout:mnist-5k-heldout[7-9]:300"), seed=4)
    assert isinstance(held, HeldOutSet) and (held.num_pairs, held.seed, held.name) == (300, 4, "mnist-5k-heldout[7-9]")
    assert held.images.shape == (150, 28, 28, 1) and sorted(set(held.labels.tolist())) == [0, 1, 2]
    with pytest.raises(ConfigError, match="at most 7351 distinct balanced pairs") as info:
        load_benchmark(parse_benchmark("heldout:mnist-5k-heldout[7-9]:9000"))  # G = 3675 < I = 11175 - G: 2G + 1
    assert info.value.hint == "use `benchmark` heldout:mnist-5k-heldout[7-9]:7351"

    rng = np.random.default_rng(0)
    images = [Image.fromarray(x) for x in rng.integers(0, 256, (6, 8, 8), dtype=np.uint8)]
    image = datasets.Image()
    feats = datasets.Features({"image_a": image, "image_b": image, "is_same": datasets.Value("bool")})
    ds = datasets.Dataset.from_dict({"image_a": images[:3], "image_b": images[3:], "is_same": [True, False, True]},
                                    features=feats)
    (tmp_path / "lfw-pairs" / "data").mkdir(parents=True)
    ds.to_parquet(str(tmp_path / "lfw-pairs" / "data" / "test-00000.parquet"))
    pairs = load_benchmark(parse_benchmark(str(tmp_path / "lfw-pairs")))
    assert isinstance(pairs, VerificationPairs) and pairs.issame.tolist() == [True, False, True]
    assert np.array_equal(pairs.images_a[:, :, :, 0], np.stack([np.asarray(x) for x in images[:3]]))
    with pytest.raises(DataError, match="benchmark") as info:  # a labelled set given as a pair list
        load_benchmark(parse_benchmark(f"pairs:{tmp_path / 'lfw-pairs'}:train"))
    assert "heldout:NAME" in info.value.hint

    (tmp_path / "IJB_B").mkdir()
    ijb = load_benchmark(parse_benchmark(f"ijbb:{tmp_path / 'IJB_B'}"))
    assert ijb == IJBSet(str(tmp_path / "IJB_B"), "ijbb")
    with pytest.raises(ConfigError, match="no benchmark given"):
        benchmarks_from([])


# ---- the command, end to end on the embedded default ---------------------------------------------------------------

def test_eval_default_model_on_heldout_digits_writes_the_report(run, tmp_path):
    rc, out, err = run("default", "--benchmark", "heldout:mnist-5k-heldout:300", "--out", "report")
    assert rc == 0, err
    report = tmp_path / "report"
    # README.md: the model-index card of a model this tool did not train (tests/test_hub_native.py)
    assert sorted(p.name for p in report.iterdir()) == ["README.md", "results.json", "results.md", "roc.png"]
    assert (report / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((report / "results.json").read_text())
    (bench,) = result["benchmarks"]
    assert (result["model"], result["flip_tta"], bench["name"], bench["kind"]) == ("default", False,
                                                                                 "mnist-5k-heldout", "verification")
    assert (bench["num_pairs"], bench["num_genuine"], bench["num_impostor"]) == (300, 150, 150)
    assert len(bench["accuracy"]["folds"]) == 10
    assert bench["accuracy"]["mean"] > 0.9 and bench["auc"] > 0.98  # measured: 0.970 and 0.9991 (seed 0)
    assert bench["timing"]["images"] == 600 and bench["timing"]["images_per_s"] > 0
    assert "| mnist-5k-heldout | 300 |" in out and "wrote report/results.json" in out


def test_bin_gives_the_same_numbers_as_the_same_pairs_in_memory(run, tmp_path):
    """Pairs drawn with --seed 3 from mnist-5k-heldout, written as a .bin (PNG, lossless): the .bin path (restricted
    reader, decoding to RGB, channel mean back to grey) must reproduce the in-memory held-out evaluation."""
    data = read_real_data("mnist-5k-heldout")
    index_a, index_b, issame = make_pairs_from_labels(data.labels, 40, seed=3)
    bins = [png_bytes(data.images[i]) for i in np.stack([index_a, index_b], axis=1).ravel()]
    (tmp_path / "digits.bin").write_bytes(pickle.dumps((bins, issame.tolist()), protocol=2))
    rc, _, err = run("default", "-b", "digits.bin", "-b", "heldout:mnist-5k-heldout:40", "--seed", "3",
                     "--batch-size", "16", "--out", "r")
    assert rc == 0, err
    on_bin, on_held = json.loads((tmp_path / "r" / "results.json").read_text())["benchmarks"]
    assert (on_bin["name"], on_bin["num_pairs"], on_bin["num_genuine"]) == ("digits", 40, 20)
    assert on_bin["auc"] == pytest.approx(on_held["auc"], abs=1e-12)
    assert on_bin["accuracy"]["folds"] == pytest.approx(on_held["accuracy"]["folds"], abs=1e-12)
    assert on_held["accuracy"]["mean"] > 0.9


def test_malicious_bin_is_refused_and_nothing_runs(run, tmp_path):
    target = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(target), "w"))

    blob = pickle.dumps(([Payload(), Payload()], [True]), protocol=4)
    for handle in pickle.loads(blob)[0]:  # control: unpickling this file really creates the target ...
        handle.close()
    assert target.exists()
    target.unlink()
    (tmp_path / "evil.bin").write_bytes(blob)
    rc, _, err = run("default", "--benchmark", "evil.bin", "--out", "r")
    assert rc == 2
    line = _error_line(err)
    assert "evil.bin is not an insightface verification .bin" in line and "references io.open" in line
    assert not target.exists() and not (tmp_path / "r").exists()  # ... the reader never ran it; no report written


def test_bin_with_mismatched_pair_counts_is_refused(run, tmp_path):
    images = random_images(3)
    (tmp_path / "odd.bin").write_bytes(pickle.dumps(([png_bytes(x) for x in images], [True, False]), protocol=4))
    rc, _, err = run("default", "--benchmark", "odd.bin")
    assert rc == 2 and "3 images for 2 pairs (expected 4)" in _error_line(err)
    assert not (tmp_path / "eval-report").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["default", "--benchmark", "lfw"], "unknown --benchmark 'lfw'"),
        (["default", "--benchmark", "tinyface:/data/tinyface"], "TinyFace is not supported"),
        (["default", "--benchmark", "heldout:mnist-5k-heldout:30000"], "at most 24501 distinct balanced pairs"),
        (["default", "--batch-size", "0"], "--batch-size must be a positive count"),
        (["no-such-model-folder"], "does not exist — check MODEL"),
    ],
)

def test_bad_input_is_one_line_exit_2(run, tmp_path, args, needle):
    rc, _, err = run(*args)
    assert rc == 2 and needle in _error_line(err), err
    assert not (tmp_path / "eval-report").exists()


def test_spec_dataclass_refuses_unknown_kind():
    with pytest.raises(ConfigError, match="unknown kind"):
        BenchmarkSpec("lfw", "x", "x")
