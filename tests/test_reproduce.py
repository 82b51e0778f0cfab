"""``scoremix-ds reproduce``: the stage cache, the table's maths (by hand), recipe validation, the bundled recipes, and
the CI recipe end to end (slow: about 2 minutes on 2 cores)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from scoremix_ds.core.errors import ConfigError
from scoremix_ds.maths.pair_strategies import STRATEGIES
from scoremix_ds.reproduce import ARM_BUILDS, ARMS, config_from_mapping, load_reproduce_config, run_reproduce
from scoremix_ds.reproduce.benchmarks import check_benchmark, expected_name, tinyface_set
from scoremix_ds.reproduce.cache import DONE, fingerprint, run_stage
from scoremix_ds.reproduce.report import fmt, markdown, write_report
from scoremix_ds.reproduce.summary import arm_table, compare, summarise

# ---------------------------------------------------------------- stage cache


def _counting_body(calls: list):
    def body(folder: Path) -> dict:
        calls.append(folder)
        (folder / "out.txt").write_text("made")
        return {"n": len(calls)}

    return body


def test_fingerprint_is_sha256_of_canonical_json():
    spec = {"b": [1, 2], "a": {"y": 0.5, "x": None}}
    expected = hashlib.sha256(b'{"a":{"x":null,"y":0.5},"b":[1,2]}').hexdigest()[:12]
    assert fingerprint(spec) == expected
    assert fingerprint({"a": {"x": None, "y": 0.5}, "b": (1, 2)}) == expected  # key order and tuples do not matter
    assert fingerprint({**spec, "b": [1, 3]}) != expected  # a changed setting is another stage


def test_stage_is_skipped_on_rerun(tmp_path):
    calls: list = []
    first = run_stage(tmp_path, "gen", {"steps": 3}, _counting_body(calls))
    second = run_stage(tmp_path, "gen", {"steps": 3}, _counting_body(calls))
    assert len(calls) == 1 and not first.cached and second.cached
    assert second.folder == first.folder == tmp_path / "stages" / f"gen-{fingerprint({'steps': 3})}"
    assert second.result == {"n": 1}
    third = run_stage(tmp_path, "gen", {"steps": 4}, _counting_body(calls))  # changed setting: new folder, runs
    assert len(calls) == 2 and not third.cached and third.folder != first.folder


def test_partial_stage_is_redone_from_scratch(tmp_path):
    folder = tmp_path / "stages" / f"gen-{fingerprint({'steps': 3})}"
    folder.mkdir(parents=True)
    (folder / "half-written.bin").write_text("junk")  # an interrupted run: files but no done.json
    calls: list = []
    stage = run_stage(tmp_path, "gen", {"steps": 3}, _counting_body(calls))
    assert len(calls) == 1 and not stage.cached
    assert not (folder / "half-written.bin").exists() and (folder / "out.txt").is_file()
    done = json.loads((folder / DONE).read_text())
    assert done["fingerprint"] == fingerprint({"steps": 3}) and done["result"] == {"n": 1}


def test_resumable_stage_keeps_its_partial_files(tmp_path):
    folder = tmp_path / "stages" / f"build-{fingerprint({'k': 1})}"
    folder.mkdir(parents=True)
    (folder / "shard-0.parquet").write_text("finished shard")
    seen = []
    run_stage(tmp_path, "build", {"k": 1}, lambda f: seen.append((f / "shard-0.parquet").exists()) or {},
              resumable=True)
    assert seen == [True]


def test_pinned_stage_resumes_only_in_the_folder_it_started_in(tmp_path):
    """A build's half-done manifest names its models by absolute path: after its report folder moved, resuming it
    would be refused by the build itself, so the stage is redone; in place, or unpinned, its files are kept."""
    import shutil

    def partial(root: Path, name: str, spec: dict, **flags) -> Path:
        with pytest.raises(RuntimeError):  # a run killed half-way: started.json and a finished shard, no marker
            run_stage(root, name, spec, lambda f: (f / "shard-0.parquet").write_text("finished") and _raise(),
                      resumable=True, **flags)
        return root / "stages" / f"{name}-{fingerprint(spec)}"

    def kept(root: Path, name: str, spec: dict, **flags) -> bool:
        seen = []
        run_stage(root, name, spec, lambda f: seen.append((f / "shard-0.parquet").exists()) or {}, resumable=True,
                  **flags)
        return seen == [True]

    first = partial(tmp_path / "a", "build", {"k": 1}, pinned=True)
    assert json.loads((first / "started.json").read_text()) == {"folder": str(first.resolve())}
    assert kept(tmp_path / "a", "build", {"k": 1}, pinned=True)  # same folder: resumed

    partial(tmp_path / "b", "build", {"k": 2}, pinned=True)
    shutil.move(tmp_path / "b", tmp_path / "moved")
    assert not kept(tmp_path / "moved", "build", {"k": 2}, pinned=True)  # moved: redone from scratch
    moved = tmp_path / "moved" / "stages" / f"build-{fingerprint({'k': 2})}"
    assert json.loads((moved / "started.json").read_text()) == {"folder": str(moved.resolve())}

    partial(tmp_path / "c", "generator", {"k": 3})
    shutil.move(tmp_path / "c", tmp_path / "moved-c")
    assert kept(tmp_path / "moved-c", "generator", {"k": 3})  # not pinned (names no path): resumed after a move


def _raise():
    raise RuntimeError("killed")


def test_failed_stage_writes_no_marker(tmp_path):
    def boom(folder):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage(tmp_path, "gen", {}, boom)
    assert not list((tmp_path / "stages").glob(f"*/{DONE}"))
    corrupt = tmp_path / "stages" / f"gen-{fingerprint({})}" / DONE
    corrupt.write_text("{not json")  # a torn marker counts as no marker
    assert not run_stage(tmp_path, "gen", {}, lambda f: {}).cached


# ---------------------------------------------------------------- table maths


def test_summarise_mean_and_sample_std_by_hand():
    s = summarise([0.90, 0.92, 0.95])
    # mean = 2.77 / 3 = 0.923333...; deviations -0.023333, -0.003333, 0.026667;
    # squares sum = 0.00054444 + 0.00001111 + 0.00071111 = 0.00126667; / (3 - 1) = 0.00063333; sqrt = 0.0251661
    assert s.mean == pytest.approx(0.9233333, abs=1e-7)
    assert s.std == pytest.approx(0.0251661, abs=1e-7)
    assert s.n == 3
    one = summarise([0.5, None, float("nan")])
    assert (one.mean, one.std, one.n) == (0.5, None, 1)
    assert summarise([]).mean is None


def _verif(name, acc, auc=0.9, eer=0.1, tar=0.5):
    return {"name": name, "kind": "verification", "accuracy": {"mean": acc, "std": 0.0}, "auc": auc, "eer": eer,
            "tar_at_far": [{"far": 1e-3, "tar": tar}]}


def _ident(name, rank1):
    return {"name": name, "kind": "identification", "rank_accuracy": {"1": rank1, "5": 1.0}}


def test_arm_table_avg_is_per_seed_mean_then_over_seeds():
    evals = {"real": {0: [_verif("lfw", 0.90), _ident("tinyface", 0.50)],
                      1: [_verif("lfw", 0.94), _ident("tinyface", 0.60)]},
             "distant": {0: [_verif("lfw", 0.96), _ident("tinyface", 0.62)],
                         1: [_verif("lfw", 0.98), _ident("tinyface", 0.64)]}}
    table = arm_table(evals, far=1e-3, ijb_far=1e-4)
    assert table["headline"] == {"lfw": "accuracy", "tinyface": "rank1"}
    real = table["arms"]["real"]
    # per-seed Avg: (0.90 + 0.50) / 2 = 0.70 and (0.94 + 0.60) / 2 = 0.77 -> mean 0.735, std |0.77 - 0.70| / sqrt 2
    assert real["avg"].values == pytest.approx((0.70, 0.77))
    assert real["avg"].mean == pytest.approx(0.735)
    assert real["avg"].std == pytest.approx(0.07 / math.sqrt(2))
    assert real["benchmarks"]["lfw"]["accuracy"].mean == pytest.approx(0.92)
    assert real["benchmarks"]["lfw"]["tar@0.001"].mean == pytest.approx(0.5)
    only_lfw = arm_table(evals, 1e-3, 1e-4, avg_over=("lfw",))
    assert only_lfw["arms"]["distant"]["avg"].mean == pytest.approx(0.97)
    # distant Avg per seed: 0.79, 0.81 -> mean 0.80, std 0.02/sqrt2; diff 0.065, se sqrt(s1^2/2 + s2^2/2)
    c = compare("distant", table["arms"]["distant"]["avg"], "real", real["avg"])
    se = math.sqrt((0.02 ** 2 / 2) / 2 + (0.07 ** 2 / 2) / 2)
    assert c.diff == pytest.approx(0.065) and c.se == pytest.approx(se) and c.ratio == pytest.approx(0.065 / se)


def test_markdown_and_json_report(tmp_path):
    evals = {arm: {s: [_verif("heldout", 0.80 + 0.01 * i + 0.002 * s)] for s in range(3)}
             for i, arm in enumerate(("real", "close", "distant"))}
    table = arm_table(evals, 1e-3, 1e-4)
    assert fmt(table["arms"]["close"]["avg"]) == "81.20 ± 0.20"  # 0.81 + {0, .002, .004}: mean .812, std .002
    text = markdown(table, "t", ["- context"])
    assert "| distant | ScoreMix, distant pairs (discriminator space) | 82.20 ± 0.20 | 82.20 ± 0.20 | +2.00 |" in text
    assert "distant − close: +1.00 pts" in text and "beyond two standard errors" in text
    files = write_report(tmp_path, table, "t", [], {"recipe": {}})
    data = json.loads(files["json"].read_text())
    assert data["table"]["arms"]["real"]["avg"]["n"] == 3
    assert files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- recipe validation


def _minimal(**top) -> dict:
    return {"generator": "default", "discriminator": "default", "seeds": [0], "arms": ["real", "distant"],
            "eval": {"benchmarks": ["heldout:mnist-5k-heldout[7-9]:300"]}, **top}


@pytest.mark.parametrize("data, words", [
    (_minimal(colour="red"), "unknown key(s) colour"),
    (_minimal(seeds="0"), "key 'seeds' has the wrong type"),
    (_minimal(arms=["real", "far"]), "unknown arm 'far'"),
    (_minimal(arm_init="warm"), "unknown arm_init 'warm'"),
    (_minimal(train={"steps": 5, "out": "x"}), "[train] sets out"),
    (_minimal(train={"backbone": "resnet9000"}), "unknown backbone 'resnet9000'"),
    (_minimal(train={"head": "sphereface"}), "unknown head 'sphereface'"),
    (_minimal(build={"strategy": "close"}), "[build] sets strategy"),
    (_minimal(build={"scheduler": "magic"}), "scheduler"),
    (_minimal(generator_train={"steps": 5}), "exactly one of `generator`"),
    (_minimal(eval={"benchmarks": ["lfw.txt"]}), "neither PATH.bin nor KIND:TARGET"),
    (_minimal(eval={"benchmarks": ["a/lfw.bin"], "avg_over": ["agedb"]}), "avg_over names 'agedb'"),
])
def test_recipe_errors_are_one_line(data, words):
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_check_and_one_line_error(tmp_path):
    import typer
    from typer.testing import CliRunner

    from scoremix_ds.cli.reproduce_cmd import reproduce

    app = typer.Typer()
    app.command()(reproduce)  # the real command, on its own app (scoremix_ds.cli registers it as "reproduce")
    ok = CliRunner().invoke(app, ["reproduce-ci", "--check", "--seeds", "0,1,2"])
    assert ok.exit_code == 0 and "9 arms x 3 seeds = 27 trainings" in ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text('generator = "default"\ndiscriminator = "default"\narms = ["real", "nearest"]\n')
    with pytest.raises(ConfigError, match="unknown arm 'nearest'"):
        CliRunner().invoke(app, [str(bad), "--check"], catch_exceptions=False)


def test_benchmark_forms():
    assert check_benchmark("/x/lfw.bin") == "bin" and expected_name("/x/lfw.bin") == "lfw"
    assert expected_name("heldout:mnist-5k[7-9]:6000") == "mnist-5k[7-9]"
    assert expected_name("ijbc:/data/IJBC") == "ijbc" and expected_name("tinyface:/t") == "tinyface"


def test_bundled_recipes_load_and_name_existing_settings():
    from scoremix_ds.maths.margins import HEADS
    from scoremix_ds.discriminators.loading import BACKBONES

    # Triplets are enumerated exactly (up to ~230 candidate classes): the CI and glyph recipes run that arm, the
    # paper's 10K identities cannot, and the demo's table was measured with the other 8 arms.
    every, no_triplets = set(ARMS), set(ARMS) - {"distant-triplets"}
    for name, arms in (("reproduce-ci", every), ("reproduce-demo", no_triplets), ("reproduce-paper", no_triplets),
                       ("reproduce-glyphs", every), ("reproduce-glyphs-ci", every), ("reproduce-glyphs-full", no_triplets)):
        cfg = load_reproduce_config(name)
        assert set(cfg.arms) == arms
        assert all(ARM_BUILDS[a][0] in STRATEGIES for a in cfg.build_arms)
        for t in (cfg.discriminator_train, cfg.train):
            assert t.backbone in BACKBONES and t.head in HEADS
    demo = load_reproduce_config("reproduce-demo")
    assert len(demo.seeds) >= 3 and demo.real_data == "mnist-5k-train[0-6]"
    assert demo.eval.benchmarks == ("heldout:mnist-5k[7-9]:6000",)  # classes 7-9: unseen by both models
    paper = load_reproduce_config("reproduce-paper")
    assert (paper.train.backbone, paper.train.head, paper.train.image_size, paper.train.channels) == \
        ("iresnet50", "arcface", 112, 3)
    assert (paper.generator_train.image_size, paper.generator_train.channels) == (112, 3)
    assert paper.build.pairs * paper.build.per_identity == 200_000
    assert len(paper.eval.benchmarks) == 8 and len(paper.seeds) >= 3


def test_tinyface_reader(tmp_path):
    from PIL import Image
    from scipy.io import savemat

    for folder, names in (("Probe", ["1_1.jpg", "2_1.jpg"]), ("Gallery_Match", ["1_2.jpg", "2_2.jpg", "2_3.jpg"]),
                          ("Gallery_Distractor", ["d1.jpg"])):
        (tmp_path / folder).mkdir()
        for i, n in enumerate(names):
            Image.fromarray(np.full((20, 16, 3), 40 * i, dtype=np.uint8)).save(tmp_path / folder / n)
    savemat(tmp_path / "probe_img_ID_pairs.mat", {"probe_set": np.array([["1_1.jpg"], ["2_1.jpg"]], dtype=object),
                                                  "probe_ids": np.array([[1], [2]])})
    savemat(tmp_path / "gallery_match_img_ID_pairs.mat",
            {"gallery_set": np.array([["1_2.jpg"], ["2_2.jpg"], ["2_3.jpg"]], dtype=object),
             "gallery_ids": np.array([[1], [2], [2]])})
    s = tinyface_set(tmp_path, image_size=8)
    assert s.probe_images.shape == (2, 8, 8, 3) and s.gallery_images.shape == (3, 8, 8, 3)
    assert s.probe_labels.tolist() == [1, 2] and s.gallery_labels.tolist() == [1, 2, 2]
    assert s.distractor_images.shape == (1, 8, 8, 3)


# ---------------------------------------------------------------- the CI recipe, end to end


@pytest.mark.slow
def test_ci_recipe_end_to_end(tmp_path):
    import pyarrow.parquet as pq

    cfg = load_reproduce_config("reproduce-ci", {"out": str(tmp_path / "report")})
    first = run_reproduce(cfg, progress=False)
    report = json.loads(first.files["json"].read_text())
    assert list(report["table"]["arms"]) == list(ARMS)
    for arm in ARMS:
        assert report["table"]["arms"][arm]["avg"]["n"] == 1
    assert first.files["plot"].is_file() and "| condition-mixing |" in first.files["markdown"].read_text()

    stages = tmp_path / "report" / "stages"
    spec = {p.name.rsplit("-", 1)[0]: json.loads((p / "spec.json").read_text()) for p in stages.iterdir()}
    assert len(spec) == len(list(stages.iterdir())) == first.stages_run  # one folder per stage
    assert spec["build-distant"]["plan"] == spec["build-condition-mixing"]["plan"]  # ONE plan for both
    assert spec["train-repro-s0"]["synthetic"][0].endswith("::repro")
    def folder(name: str) -> Path:  # "build-distant-<12 hex>", not "build-distant-condition-<12 hex>"
        (match,) = [p for p in stages.iterdir() if re.fullmatch(rf"{name}-[0-9a-f]{{12}}", p.name)]
        return match

    tables = {a: pq.read_table(folder(f"build-{a}") / "dataset" / "data" / "mix").to_pydict()
              for a in ("distant", "condition-mixing")}
    for column in ("parents", "seed", "weights"):
        assert tables["distant"][column] == tables["condition-mixing"][column]  # identical pairs and seeds
    assert set(tables["distant"]["mixing"]) == {"score"} and set(tables["condition-mixing"]["mixing"]) == {"condition"}
    assert tables["distant"]["image"] != tables["condition-mixing"]["image"]

    # Interrupted evaluation: its marker is gone -> only that stage runs again, the report is rewritten the same.
    (folder("eval-close-s0") / DONE).unlink()
    second = run_reproduce(cfg, progress=False)
    assert (second.stages_run, second.stages_cached) == (1, first.stages_run - 1)
    again = json.loads(second.files["json"].read_text())
    assert again["table"] == report["table"]


@pytest.mark.slow
def test_a_moved_report_folder_finishes_its_interrupted_build_and_training(tmp_path, caplog):
    """Interrupted stages of a report folder that was then moved: the build (whose manifest names the models by their
    old absolute paths) and the arm training on it (whose checkpoints name the build's path) are redone there, the
    same rows and the same table come out, and nothing of the finished stages is redone."""
    import shutil
    import pyarrow.parquet as pq

    overrides = {"out": str(tmp_path / "report"), "arms": ["real", "distant"]}
    cfg = load_reproduce_config("reproduce-ci", overrides)
    first = run_reproduce(cfg, progress=False)
    table = json.loads(first.files["json"].read_text())["table"]
    stages = tmp_path / "report" / "stages"
    (build,) = stages.glob("build-distant-*")
    (train,) = stages.glob("train-distant-s0-*")
    rows = pq.read_table(build / "dataset" / "data" / "mix").to_pydict()
    for stage in (build, train):
        (stage / DONE).unlink()  # killed before their markers

    shutil.move(tmp_path / "report", tmp_path / "moved")
    caplog.set_level("WARNING", logger="scoremix_ds.reproduce.cache")
    second = run_reproduce(load_reproduce_config("reproduce-ci", {**overrides, "out": str(tmp_path / "moved")}),
                           progress=False)
    assert second.stages_run == 2 and second.stages_cached == first.stages_run - 2
    assert sum("redoing it from scratch here" in r.getMessage() for r in caplog.records) == 2
    moved = tmp_path / "moved" / "stages" / build.name
    assert pq.read_table(moved / "dataset" / "data" / "mix").to_pydict() == rows  # same seeds: the same rows
    assert json.loads(second.files["json"].read_text())["table"] == table


@pytest.mark.slow
def test_glyphs_ci_recipe_end_to_end(tmp_path):
    """The many-identity pipeline at CI size: every arm, 2 seeds, open-set scoring of every pair of unseen glyphs."""
    cfg = load_reproduce_config("reproduce-glyphs-ci", {"out": str(tmp_path / "report")})
    result = run_reproduce(cfg, progress=False)
    report = json.loads(result.files["json"].read_text())
    arms = report["table"]["arms"]
    assert list(arms) == list(cfg.arms) and set(cfg.arms) == set(ARMS)
    head = "openset:glyphs-han-verify[0-39]"
    assert report["table"]["headline"][head] == "tar@0.0001" and report["table"]["avg_over"] == [head]
    for arm in arms.values():
        stats = arm["benchmarks"][head]
        assert set(stats) == {"tar@0.0001", "tar@1e-05", "rank1"} and stats["rank1"]["n"] == 2
        assert arm["avg"]["values"] == stats["tar@0.0001"]["values"]  # Avg is the declared headline alone
    pairs = {(c["a"], c["b"]) for c in report["comparisons"]}
    assert {("distant", "real"), ("distant", "close"), ("distant", "distant-triplets"),
            ("distant-condition", "close-condition")} <= pairs
    assert all(c["se"] is not None for c in report["comparisons"])  # 2 seeds: every comparison has its SE
    evals = sorted((tmp_path / "report" / "stages").glob("eval-real-s0-*/eval.json"))
    (bench,) = [b for b in json.loads(evals[0].read_text())["benchmarks"] if b["kind"] == "openset"]
    assert bench["num_identities"] == 40 and bench["num_genuine"] == 40 * 16 * 15 // 2
    assert bench["num_genuine"] + bench["num_impostor"] == 640 * 639 // 2  # every pair of the 640 images


def _recipe_changes(reference: str, recipe: str) -> set[tuple[str | None, str]]:
    """``(section, field)`` of every setting in which two bundled recipes differ (``None``: a top-level key)."""
    from scoremix_ds.core.recipes import to_dict

    a, b = to_dict(load_reproduce_config(reference)), to_dict(load_reproduce_config(recipe))
    return {(k, f) for k in a if isinstance(a[k], dict) for f in a[k] if a[k][f] != b[k][f]} | {
        (None, k) for k in a if not isinstance(a[k], dict) and a[k] != b[k]}


@pytest.mark.parametrize("name, section, field, value", [
    ("reproduce-glyphs-ablate-ratio", "train", "synthetic_ratio", 0.25),
    ("reproduce-glyphs-ablate-init", None, "arm_init", "discriminator"),
    ("reproduce-glyphs-ablate-steps", "train", "steps", 3375),
    ("reproduce-glyphs-ablate-generator", "generator_train", "snr_gamma", 5.0),
    ("reproduce-glyphs-ablate-identities", "build", "pairs", 400),
])
def test_glyph_ablations_change_exactly_one_setting_and_share_the_main_builds(name, section, field, value):
    from scoremix_ds.core.recipes import to_dict

    main, ablation = load_reproduce_config("reproduce-glyphs"), load_reproduce_config(name)
    b = to_dict(ablation)
    differing = _recipe_changes("reproduce-glyphs", name)
    # the one change, plus which arms and seeds run (not settings of any stage)
    assert differing == {(section, field), (None, "arms"), (None, "seeds")}, differing
    assert (b[section][field] if section else b[field]) == value
    assert "distant" in ablation.arms and set(ablation.seeds) <= set(main.seeds)
    if section not in ("generator_train", "build"):  # a training-side ablation reuses the main distant build,
        assert "repro" in ablation.arms                   # repro rows included (a recipe without repro builds anew)


def test_the_two_lever_ablation_adds_one_change_to_each_one_lever_ablation():
    from scoremix_ds.core.recipes import to_dict

    both = to_dict(load_reproduce_config("reproduce-glyphs-ablate-both"))
    assert _recipe_changes("reproduce-glyphs-ablate-both", "reproduce-glyphs-ablate-generator") == \
        {("train", "synthetic_ratio")}
    assert _recipe_changes("reproduce-glyphs-ablate-both", "reproduce-glyphs-ablate-ratio") == \
        {("generator_train", "snr_gamma"), (None, "arms")}
    assert both["train"]["synthetic_ratio"] == 0.25 and both["generator_train"]["snr_gamma"] == 5.0


def test_the_longer_generator_ablation_changes_only_the_generator_steps_of_the_min_snr_one():
    from scoremix_ds.core.recipes import to_dict

    base = to_dict(load_reproduce_config("reproduce-glyphs-ablate-generator"))
    longer = to_dict(load_reproduce_config("reproduce-glyphs-ablate-generator-8k"))
    assert _recipe_changes("reproduce-glyphs-ablate-generator", "reproduce-glyphs-ablate-generator-8k") == \
        {("generator_train", "steps")}
    assert (base["generator_train"]["steps"], longer["generator_train"]["steps"]) == (4000, 8000)
    ratio = to_dict(load_reproduce_config("reproduce-glyphs-ablate-generator-8k-ratio"))
    assert _recipe_changes("reproduce-glyphs-ablate-generator-8k", "reproduce-glyphs-ablate-generator-8k-ratio") == \
        {("train", "synthetic_ratio")} and ratio["train"]["synthetic_ratio"] == 0.25


@pytest.mark.parametrize("name, reference", [
    ("reproduce-glyphs-replicate", "reproduce-glyphs-ablate-generator-8k"),
    ("reproduce-glyphs-replicate-ratio", "reproduce-glyphs-ablate-generator-8k-ratio"),
])
def test_the_replications_change_only_the_identities_of_the_setting_they_replicate(name, reference):
    from scoremix_ds.core.recipes import to_dict

    config = to_dict(load_reproduce_config(name))
    # disjoint identities; the comparison arms in one report; 5 declared seeds; its own report folder
    assert _recipe_changes(reference, name) == {(None, "real_data"), (None, "arms"), (None, "seeds"), (None, "out")}
    assert config["real_data"] == "glyphs-han-train[200-399]" and config["seeds"] == [0, 1, 2, 3, 4]
    assert config["arms"] == ["real", "random", "close", "distant"]


def test_the_edm2_recipes_change_the_generator_and_sampler_of_the_main_one_and_only_the_ratio_between_them():
    """Issue 23 part 2: the main recipe's protocol with EDM2 (its training and its Heun + autoguidance sampler, chosen
    on other identities); the -ratio twin changes only synthetic_ratio."""
    from scoremix_ds.core.recipes import to_dict

    edm2 = to_dict(load_reproduce_config("reproduce-glyphs-edm2"))
    assert {(s, f) for s, f in _recipe_changes("reproduce-glyphs", "reproduce-glyphs-edm2")
            if s not in ("generator_train",)} == {(None, "out"), ("build", "scheduler"), ("build", "steps"),
                                                   ("build", "guidance")}
    assert edm2["generator_train"]["architecture"] == "edm2-cpu" and edm2["generator_train"]["steps"] == 2200
    assert (edm2["build"]["scheduler"], edm2["build"]["steps"], edm2["build"]["guidance"]) == ("edm-heun", 16, 2.2)
    assert edm2["real_data"] == "glyphs-han-train[0-199]" and edm2["seeds"] == [0, 1, 2, 3, 4]
    assert _recipe_changes("reproduce-glyphs-edm2", "reproduce-glyphs-edm2-ratio") == {("train", "synthetic_ratio")}
    assert to_dict(load_reproduce_config("reproduce-glyphs-edm2-ratio"))["train"]["synthetic_ratio"] == 0.25


def test_the_600_identity_recipes_scale_the_replication_by_the_identity_count_only():
    """Issue 23 part 3: reproduce-glyphs-replicate's settings on 600 identities, every step count scaled with them
    (same epochs), 600 new identities; the -ratio twin changes only synthetic_ratio."""
    from scoremix_ds.core.recipes import to_dict

    big = to_dict(load_reproduce_config("reproduce-glyphs-600"))
    assert _recipe_changes("reproduce-glyphs-replicate", "reproduce-glyphs-600") == {
        (None, "out"), (None, "real_data"), (None, "arms"), ("generator_train", "steps"),
        ("discriminator_train", "steps"), ("build", "pairs"), ("train", "steps")}
    assert big["real_data"] == "glyphs-han-train[0-599]" and big["build"]["pairs"] == 600
    assert (big["generator_train"]["steps"], big["discriminator_train"]["steps"], big["train"]["steps"]) == \
        (3 * 8000, 3 * 1500, 3 * 1500)
    assert big["arms"] == ["real", "close", "distant"] and big["seeds"] == [0, 1, 2, 3, 4]
    assert _recipe_changes("reproduce-glyphs-600", "reproduce-glyphs-600-ratio") == {("train", "synthetic_ratio")}
