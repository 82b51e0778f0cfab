"""MNIST defaults do not leak into a user's work (issue 24.7): the embedded discriminator ranks only the embedded
generator's pairs, ``eval`` runs the MNIST benchmark only on the embedded model, and a card's tags describe the
data (``build --tags``), never ``face-recognition`` unless asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.cli import run_cli


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("command", ["build", "plan"])
def test_a_users_generator_is_not_ranked_by_the_embedded_mnist_discriminator(capsys, tmp_path, command,
                                                                            tiny_generator_dir, tiny_real_data_dir):
    out = tmp_path / ("out" if command == "build" else "plan.parquet")
    rc, _, err = run_cli(capsys, command, "--generator", str(tiny_generator_dir), "--real-data", str(tiny_real_data_dir),
                         "--pairs", "2", "--per-identity", "1", *(["--steps", "1"] if command == "build" else []),
                         "--out", str(out), "--no-progress")
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1 and len(err.strip().splitlines()) == 1, err
    assert "--discriminator" in lines[0] and "MNIST" in lines[0] and not out.exists()


def test_the_embedded_generator_keeps_its_discriminator_and_random_needs_none(tiny_generator_dir):
    from scoremix_ds.core.resources import default_model_dir
    from scoremix_ds.synthesis.config import BuildConfig
    from scoremix_ds.synthesis.resolve import check_discriminator

    check_discriminator(BuildConfig())  # the embedded default pair: no question asked
    check_discriminator(BuildConfig(generator=str(default_model_dir("generator"))))
    check_discriminator(BuildConfig(generator=str(tiny_generator_dir), strategy="random"))
    check_discriminator(BuildConfig(generator=str(tiny_generator_dir), strategy="distant-condition"))
    check_discriminator(BuildConfig(generator=str(tiny_generator_dir), discriminator="sface", real_data="x"))


def test_eval_of_a_users_model_asks_for_a_benchmark(capsys, tmp_path, tiny_discriminator_dir):
    before = sorted(p.name for p in Path(tiny_discriminator_dir).iterdir())
    rc, _, err = run_cli(capsys, "eval", str(tiny_discriminator_dir), "--out", str(tmp_path / "report"), "--no-progress")
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1 and "--benchmark" in lines[0] and "mnist-5k-heldout" in lines[0], err
    assert not (tmp_path / "report").exists()
    assert sorted(p.name for p in Path(tiny_discriminator_dir).iterdir()) == before  # no README / model-index written


def test_eval_default_model_keeps_the_mnist_default():
    from scoremix_ds.cli.eval_cmd import is_default_model
    from scoremix_ds.core.resources import default_model_dir

    assert is_default_model("default") and is_default_model(str(default_model_dir("discriminator")))
    assert not is_default_model("org/faces") and not is_default_model("sface")


def test_card_tags_describe_the_data_and_persist(capsys, tmp_path, tiny_generator_dir, tiny_discriminator_dir,
                                                 tiny_real_data_dir, one_thread):
    from huggingface_hub import DatasetCard

    from scoremix_ds.dataset.card import DEFAULT_TAGS, card_tags, recorded_card_tags, write_build_card
    from scoremix_ds.dataset.manifest import Manifest

    assert "face-recognition" not in card_tags() and card_tags()[:len(DEFAULT_TAGS)] == list(DEFAULT_TAGS)
    assert card_tags(["faces", "scoremix"])[-1] == "arxiv:2506.10226" and card_tags(["faces"]).count("scoremix") == 1
    base = ["build", "--generator", str(tiny_generator_dir), "--discriminator", str(tiny_discriminator_dir),
            "--real-data", str(tiny_real_data_dir), "--pairs", "2", "--per-identity", "1", "--steps", "1",
            "--no-progress"]
    rc, _, err = run_cli(capsys, *base, "--out", str(tmp_path / "plain"))
    assert rc == 0, err
    tags = DatasetCard.load(tmp_path / "plain" / "README.md").data.tags
    assert "face-recognition" not in tags and {"synthetic", "scoremix", "arxiv:2506.10226"} <= set(tags)

    out = tmp_path / "faces"
    rc, _, err = run_cli(capsys, *base, "--tags", "face-recognition,faces", "--tags", "synthetic", "--out", str(out))
    assert rc == 0, err
    tags = DatasetCard.load(out / "README.md").data.tags
    assert "face-recognition" in tags and "faces" in tags and tags.count("synthetic") == 1
    assert "scoremix" in tags and "arxiv:2506.10226" in tags
    # a later re-render (audit, merge) keeps the user's tags; the fingerprint ignores them
    assert recorded_card_tags(out) == ["face-recognition", "faces", "synthetic"]
    write_build_card(out, Manifest.read(out))
    assert "face-recognition" in DatasetCard.load(out / "README.md").data.tags
    assert Manifest.read(out).fingerprint == Manifest.read(tmp_path / "plain").fingerprint
