"""Hostile strings from users, model folders and datasets reach cards and plots as text, never as markup."""

from __future__ import annotations

import json

import pytest
import yaml

from scoremix_ds.core.card_text import card_safe, plot_safe
from scoremix_ds.dataset.card import write_build_card
from scoremix_ds.dataset.manifest import Manifest
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.runner import run_build

HOSTILE = [
    "<script>alert(1)</script>",
    "name\n---\nlicense: evil\n---\n# injected heading",
    "a | b | c",
    "`code` <img src=x onerror=alert(1)>",
    "x" * 5000,
    "Ünïcødé 汉字 🙂",
    "$\\frac{1}{0$",
]


def _front_matter_and_body(text: str) -> tuple[dict, str]:
    """The card's YAML, and its markdown outside fenced code blocks (JSON there escapes newlines: a value cannot
    close the fence, and nothing inside one is rendered as HTML)."""
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), "".join(part for i, part in enumerate(body.split("```")) if i % 2 == 0)


@pytest.mark.parametrize("value", HOSTILE)
def test_card_safe_leaves_no_markup_no_new_lines_no_cells(value):
    shown = card_safe(value)
    assert "<" not in shown and ">" not in shown and "\n" not in shown and "`" not in shown
    assert shown.count("|") == shown.count("\\|") and len(shown) <= 300
    assert card_safe({"k": [value, 3]}) == {"k": [shown, 3]}


def test_a_build_card_shows_hostile_provenance_as_text_and_keeps_it_in_the_yaml(
        tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path):
    out = tmp_path / "build"
    run_build(BuildConfig(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                          real_data=str(tiny_real_data_dir), pairs=2, per_identity=1, steps=2, out=str(out)),
              progress=False)
    clean_body = _front_matter_and_body((out / "README.md").read_text())[1]
    manifest = Manifest.read(out)
    for i, value in enumerate(HOSTILE):
        manifest.provenance[f"field{i}"] = value
    manifest.provenance["real_data"] = HOSTILE[0] + HOSTILE[1] + HOSTILE[2]
    write_build_card(out, manifest)
    meta, body = _front_matter_and_body((out / "README.md").read_text())
    assert "<script" not in body and "<img" not in body
    assert not [line for line in body.splitlines() if line.startswith("# injected")]  # no heading from a value
    assert meta["scoremix"]["provenance"]["real_data"] == manifest.provenance["real_data"]  # YAML keeps it whole
    assert meta["scoremix"]["provenance"]["field1"] == HOSTILE[1] and "license: evil" not in json.dumps(meta["license"])
    # the table rows keep their cells: the hostile value adds no unescaped '|'
    row = next(line for line in body.splitlines() if line.startswith("| real data"))
    assert row.replace("\\|", "").count("|") == 3
    assert body.count("\n---\n") == clean_body.count("\n---\n")  # no new YAML document or rule from a value


def test_model_and_generator_cards_escape_what_their_folders_record(tmp_path):
    from scoremix_ds.training.generator_card import generator_card

    meta = {"num_classes": 2, "class_names": [HOSTILE[0], HOSTILE[2]], "null_class": 2, "image_size": 8, "channels": 1,
            "architecture": HOSTILE[3], "real_data": HOSTILE[0], "licence": None,
            "trained_with": {"config": {"real_data": HOSTILE[0], "steps": 1, "batch_size": 1, "learning_rate": 0.1,
                                        "warmup_steps": 0, "label_dropout": 0.1, "beta_schedule": "x",
                                        "num_train_timesteps": 10, "prediction_type": "epsilon", "ema_decay": 0.9,
                                        "snr_gamma": None},
                             "version": "0", "fingerprint": "f"}}
    text = str(generator_card(meta, "UNet2DModel", str(tmp_path)))
    body = _front_matter_and_body(text)[1]
    assert "<script" not in body and "<img" not in body


def test_plot_text_with_a_dollar_renders(tmp_path):
    from scoremix_ds.core.plots import save_histograms
    import numpy as np

    assert plot_safe("a $x$ b\nc") == r"a \$x\$ b c"
    save_histograms(tmp_path / "h.png", [(HOSTILE[6], np.arange(5.0))], xlabel=HOSTILE[6], title=HOSTILE[1])
    assert (tmp_path / "h.png").stat().st_size > 0
