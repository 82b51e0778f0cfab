"""``scoremix-ds push FOLDER`` takes what the other commands write (issue 24 item 3): a build goes to a dataset
repository (tests/test_push.py), a trained model and a trained generator to a model repository, the kind read from
the folder's files. The EDM2 generator folder `train-generator --architecture edm2-cpu` writes has a model card
(EDM2's sampler, guide and training settings) whose Python snippet, taken from the PUSHED card and run as written in a
fresh interpreter against the loopback Hub, gives the images the local folder gives. Tiny: edm2-cpu at 8x8, 4 steps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hubfixtures import REPO_ROOT, client_env, run_cli

from conftest import write_tiny_discriminator, write_tiny_real_data
from scoremix_ds.core.errors import ConfigError
from scoremix_ds.hub.folder_kind import folder_kind
from scoremix_ds.training.generator import train_generator
from scoremix_ds.training.generator_config import GeneratorTrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = "org/glyph-edm2"


@pytest.fixture(scope="module")
def edm2_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("edm2")
    real = write_tiny_real_data(root / "tiny-real")
    out = root / "gen"
    train_generator(GeneratorTrainConfig(out=str(out), real_data=str(real), architecture="edm2-cpu", image_size=8,
                                         channels=1, steps=4, batch_size=4, warmup_steps=2, learning_rate=1e-2,
                                         guide_steps=2, checkpoint_every=2, device="cpu"), progress=False)
    return out


def _front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---")[1])


def _python_snippet(card: str) -> str:
    (code,) = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    return code


def test_a_trained_edm2_folder_has_a_card_that_describes_it(edm2_folder):
    card = (edm2_folder / "README.md").read_text(encoding="utf-8")
    meta = json.loads((edm2_folder / "scoremix.json").read_text())
    front = _front_matter(card)
    assert front["library_name"] == "diffusers" and "edm2" in front["tags"] and "arxiv:2506.10226" in front["tags"]
    assert "**EDM2**" in card and "`edm2-cpu`" in card and "σ_data = 0.5" in card
    assert "`edm2-cpu-guide`, trained on the same batches for 2 steps" in card  # the guide and its training
    assert f"| steps | {meta['sampler']['steps']} |" in card and "`edm-heun`" in card
    assert "ln σ ~ N(-0.8, 1.6²)" in card and "σ_rel = 0.1" in card
    assert f'from_pretrained("{edm2_folder}")' in card and f"--generator {edm2_folder} " in card
    assert "beta_schedule" not in card.split("```json")[0]  # none of the DDPM template's rows


def test_push_takes_an_edm2_generator_folder_and_its_card_snippet_runs_from_the_hub(hub, tmp_path, edm2_folder):
    pushed = run_cli(hub, tmp_path / "hf_home", "push", str(edm2_folder), "--repo", REPO, "--tag", "v1")
    assert pushed.rc == 0, pushed.err
    assert f"pushed generator to {hub.endpoint}/{REPO}" in pushed.out and f"{REPO}@v1" in pushed.out
    files = hub.files(REPO, revision="v1", repo_type="model")
    assert {"model_index.json", "scoremix.json", "README.md", "edm2/config.json",
            "edm2/diffusion_pytorch_model.safetensors", "edm2_guide/config.json",
            "edm2_guide/diffusion_pytorch_model.safetensors"} <= set(files)
    assert not [f for f in files if f.startswith("checkpoints/")]
    for name in ("edm2/diffusion_pytorch_model.safetensors", "edm2_guide/diffusion_pytorch_model.safetensors"):
        assert files[name] == (edm2_folder / name).read_bytes()
    card = files["README.md"].decode()
    assert f'from_pretrained("{REPO}", revision="v1")' in card and str(edm2_folder) not in card

    # The pushed card's snippet, as written, in a fresh interpreter pointed at the Hub; then the same call locally.
    snippet = _python_snippet(card)
    save = ("\nimages = list(images) + list(pipe(classes=[(0, 1)], seeds=[1], num_inference_steps=4,"
            " guidance_scale=1.7).images)  # autoguided: the guide network came too"
            "\nimport numpy as np\nnp.save(OUT, np.stack([np.asarray(im) for im in images]))\n")
    script = tmp_path / "snippet.py"
    script.write_text(f"OUT = {str(tmp_path / 'hub.npy')!r}\n" + snippet + save, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, env=client_env(hub, tmp_path / "reader"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    local_card = (edm2_folder / "README.md").read_text(encoding="utf-8")
    namespace = {"OUT": str(tmp_path / "local.npy")}
    exec(_python_snippet(local_card) + save, namespace)  # the local folder's own card snippet
    np.testing.assert_array_equal(np.load(tmp_path / "hub.npy"), np.load(tmp_path / "local.npy"))

    again = run_cli(hub, tmp_path / "hf_home", "push", str(edm2_folder), "--repo", REPO, "--tag", "v1")
    assert again.rc == 0 and "already holds this generator" in again.out and "no new commit" in again.out, again.err


def test_push_takes_a_trained_model_folder(hub, tmp_path):
    model = write_tiny_discriminator(tmp_path / "net")
    pushed = run_cli(hub, tmp_path / "hf_home", "push", str(model), "--repo", "org/net", "--tag", "v1")
    assert pushed.rc == 0, pushed.err
    assert f"pushed model to {hub.endpoint}/org/net" in pushed.out and "org/net@v1" in pushed.out
    files = hub.files("org/net", revision="v1", repo_type="model")
    assert files["model.safetensors"] == (model / "model.safetensors").read_bytes()
    assert not [r for r in hub.requests if "/datasets/" in r.path]


def test_a_folder_that_is_none_of_them_is_one_line_before_any_network(hub, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    refused = run_cli(hub, tmp_path / "hf_home", "push", str(tmp_path / "notes"), "--repo", "org/x")
    assert refused.rc == 2 and len(refused.error_lines) == 1, refused.err
    assert "manifest.json" in refused.error_lines[0] and "model_index.json" in refused.error_lines[0]
    assert not hub.requests
    with pytest.raises(ConfigError, match="not a folder"):
        folder_kind(tmp_path / "missing")
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"\x80\x04")
    assert folder_kind(tmp_path / "pickled") == "model"  # refused by the model push in its own line (pickles)
    pickled = run_cli(hub, tmp_path / "hf_home", "push", str(tmp_path / "pickled"), "--repo", "org/x")
    assert pickled.rc == 2 and "pickle" in pickled.error_lines[0] and not hub.requests, pickled.err
