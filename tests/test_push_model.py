"""``push_model`` against the LoopbackHub with the REAL huggingface_hub client, and its offline checks.

Pushes and loads run in fresh interpreters pointed at the server (huggingface_hub reads HF_ENDPOINT at import time:
see hubfixtures.py); the server records every request and holds every commit, so the tests check what reached the
"Hub". The expected cards and metadata below are written out by hand.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hubfixtures import REPO_ROOT, client_env

from scoremix_ds.core.errors import ConfigError, ModelError
from scoremix_ds.core.refs import public_text
from scoremix_ds.hub.push_model import (
    FIX,
    ModelPushConfig,
    push_model,
    staged_model,
)
from scoremix_ds.discriminators.loading import SmallCNN, embed_images, load_discriminator
from fixtures.hub_server import LoopbackHub

SECRET = "hf_model_token_that_must_never_be_printed_0123456789"
REPO = "org/face-net"
_MARK = "@@RESULT@@"
IMAGES = np.random.default_rng(0).integers(0, 256, size=(5, 8, 8, 1), dtype=np.uint8)

# The shape of cards/model_card.md where it names the model's location; @...@ are filled in by _card.
CARD = """---
library_name: scoremix-ds
tags:
- face-recognition
---

# small-cnn trained with scoremix-ds

```python
model = @LOAD@       # config.json + model.safetensors
```

Evaluate with `@EVAL@ --benchmark lfw:ROOT`.

| role | source |
|---|---|
| real | `@REAL@::mix@v1` |

```json
{"out": "@OUT@", "steps": 2}
```
"""


def _card(load: str, eval_: str, out: str, real: str) -> str:
    return CARD.replace("@LOAD@", load).replace("@EVAL@", eval_).replace("@OUT@", out).replace("@REAL@", real)


def _saved_model(folder: Path, seed: int) -> SmallCNN:
    """What `scoremix-ds train` leaves: save_pretrained files, card, scoremix.json, log and checkpoints."""
    torch.manual_seed(seed)
    model = SmallCNN(in_channels=1, image_size=8, embedding_dim=16).eval()
    model.save_pretrained(folder)
    faces = folder.parent / "faces"
    (folder / "README.md").write_text(_card(f'load_discriminator("{folder}")', f"scoremix-ds eval {folder}",
                                            str(folder), str(faces)), encoding="utf-8")
    meta = {"config": {"out": str(folder), "real": [f"{faces}::mix@v1"], "steps": 2},
            "sources": [{"location": str(faces), "provenance": f"imagefolder {faces} at 3f1c"}]}
    (folder / "scoremix.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (folder / "train_log.jsonl").write_text('{"step": 2, "loss": 1.5}\n', encoding="utf-8")
    step = folder / "checkpoints" / "step-00000002"
    step.mkdir(parents=True)
    (step / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    (step / "optimizer.bin").write_bytes(b"optimizer state")
    return model


def _public_card(folder: Path, revision: str | None) -> str:
    """The card as it must be published: hand-written counterpart of _saved_model's card."""
    if revision:
        load, eval_ = f'load_discriminator("{REPO}", revision="{revision}")', f"scoremix-ds eval {REPO} --revision {revision}"
    else:
        load, eval_ = f'load_discriminator("{REPO}")', f"scoremix-ds eval {REPO}"
    return _card(load, eval_, f"local:{folder.name}", "local:faces")


PUBLIC_META = {"config": {"out": None, "real": ["local:faces::mix@v1"], "steps": 2},
               "sources": [{"location": "local:faces", "provenance": "imagefolder local:faces at 3f1c"}]}


def _public_meta(folder: Path) -> dict:
    meta = json.loads(json.dumps(PUBLIC_META))
    meta["config"]["out"] = f"local:{folder.name}"
    return meta


def _run(hub: LoopbackHub, hf_home: Path, code: str, token: str | None = None) -> tuple[dict, str]:
    """Run ``code`` (fills ``result``) in a fresh interpreter pointed at ``hub``, logging at DEBUG to stderr.

    Returns the result and everything the process printed.
    """
    script = ("import json, logging, sys\nlogging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\nresult = {}\n"
              + textwrap.dedent(code) + f"\nprint({_MARK!r} + json.dumps(result))\n")
    proc = subprocess.run([sys.executable, "-c", script], check=False, cwd=REPO_ROOT, env=client_env(hub, hf_home, token=token),
                          capture_output=True, text=True, timeout=180)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"snippet failed (rc={proc.returncode})\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(lines[-1][len(_MARK):]), proc.stdout + proc.stderr


@pytest.fixture
def hub(hub):
    """The ``hub`` of conftest, which also takes SECRET as a write token."""
    hub.add_token(SECRET, write=True)
    return hub


# ---------------------------------------------------------------------- against the Hub


def test_push_tag_repush_and_load_each_version_in_a_fresh_process(hub, tmp_path):
    a, b = tmp_path / "run-a" / "model-a", tmp_path / "run-b" / "model-b"
    model_a, model_b = _saved_model(a, seed=0), _saved_model(b, seed=1)
    pushed, printed = _run(hub, tmp_path / "hf_home", f"""
        from scoremix_ds.core.errors import ConfigError
        from scoremix_ds.hub.push_model import ModelPushConfig, push_model

        def push(folder, tag):
            r = push_model(ModelPushConfig(folder, {REPO!r}, tag=tag, token={SECRET!r}))
            return {{"sha": r.commit_sha, "tag": r.tag, "url": r.url, "created": r.created_commit}}

        result["v1"] = push({str(a)!r}, "v1")
        result["v1_again"] = push({str(a)!r}, "v1")   # identical content: no commit
        try:
            push({str(b)!r}, "v1")                     # other weights under an existing tag: refused
        except ConfigError as exc:
            result["v1_other"] = str(exc)
        result["v2"] = push({str(b)!r}, "v2")
    """, token="")  # the token comes from the config only

    v1, v2 = pushed["v1"], pushed["v2"]
    assert v1["created"] and v1["tag"] == "v1" and v1["url"] == f"{hub.endpoint}/{REPO}"
    assert pushed["v1_again"] == {**v1, "created": False}
    assert pushed["v1_other"].startswith(f"tag v1 already exists in {REPO} (commit {v1['sha'][:8]}) with other content")
    assert v2["created"] and v2["sha"] != v1["sha"]
    refs = hub.refs(REPO, repo_type="model")
    assert refs["tags"] == {"v1": v1["sha"], "v2": v2["sha"]} and refs["branches"] == {"main": v2["sha"]}
    sha16 = {f: hashlib.sha256((f / "model.safetensors").read_bytes()).hexdigest()[:16] for f in (a, b)}
    assert [c.title for c in hub.commits(REPO, repo_type="model")] == [  # one commit per version, none for the re-push
        f"scoremix-ds: small-cnn model {sha16[b]} (v2)", f"scoremix-ds: small-cnn model {sha16[a]} (v1)", "initial commit"]

    for folder, tag in ((a, "v1"), (b, "v2")):
        files = hub.files(REPO, revision=tag, repo_type="model")
        assert sorted(files) == [".gitattributes", "README.md", "config.json", "model.safetensors", "scoremix.json"]
        assert files["config.json"] == (folder / "config.json").read_bytes()
        assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
        assert files["README.md"].decode() == _public_card(folder, tag)
        assert json.loads(files["scoremix.json"]) == _public_meta(folder)
        assert all(SECRET.encode() not in content and str(tmp_path).encode() not in content for content in files.values())
    assert SECRET not in printed  # DEBUG logs of scoremix_ds, huggingface_hub and the HTTP client included
    assert hub.requests_matching("POST", rf"^/api/models/{REPO}/commit/main")  # model URLs: no /datasets/ segment
    assert not [r for r in hub.requests if "/datasets/" in r.path]

    # Bit-equal embeddings need the same float reduction order: the reader uses this process's thread count (an
    # in-process accelerate state, made by earlier tests, may have changed it from the default).
    loaded, _ = _run(hub, tmp_path / "hf_home_reader", f"""
        import numpy as np
        import torch
        from scoremix_ds.discriminators.loading import embed_images, load_discriminator

        torch.set_num_threads({torch.get_num_threads()})

        images = np.asarray({IMAGES.tolist()!r}, dtype=np.uint8)
        for rev in ("v1", "v2"):
            result[rev] = embed_images(load_discriminator({REPO!r}, revision=rev), images).tolist()
    """, token="")
    np.testing.assert_array_equal(np.asarray(loaded["v1"], dtype=np.float32), embed_images(model_a, IMAGES))
    np.testing.assert_array_equal(np.asarray(loaded["v2"], dtype=np.float32), embed_images(model_b, IMAGES))
    assert not np.allclose(loaded["v1"], loaded["v2"])


def test_auth_failures_retries_and_a_token_in_the_card(hub, tmp_path):
    folder = tmp_path / "model"
    _saved_model(folder, seed=0)
    leaky = tmp_path / "leaky"
    _saved_model(leaky, seed=0)
    (leaky / "README.md").write_text(f"token: {SECRET}\n", encoding="utf-8")
    hub.add_token("hf_read_only_model_token_0123456789", write=False)
    hub.fail_next("POST", rf"^/api/models/{REPO}/commit/main", status=503)  # the first commit attempt fails
    result, printed = _run(hub, tmp_path / "hf_home", f"""
        from scoremix_ds.core.errors import ScoreMixError
        from scoremix_ds.hub.push_model import ModelPushConfig, push_model

        def attempt(key, folder, token, **kw):
            try:
                r = push_model(ModelPushConfig(folder, {REPO!r}, token=token, backoff_s=0, **kw))
                result[key] = {{"sha": r.commit_sha, "tag": r.tag}}
            except ScoreMixError as exc:
                result[key] = type(exc).__name__ + ": " + str(exc)

        attempt("unknown", {str(folder)!r}, "hf_unknown_" + {SECRET!r})
        attempt("read_only", {str(folder)!r}, "hf_read_only_model_token_0123456789")
        attempt("leaky_card", {str(leaky)!r}, {SECRET!r})
        attempt("retried", {str(folder)!r}, {SECRET!r}, tag="v1")
    """, token="")
    assert result["unknown"].startswith("HubError: the Hub rejected the token (401 Unauthorized")
    assert result["read_only"].startswith(f"HubError: the token has no write access to {REPO} (403 Forbidden)")
    assert result["leaky_card"].startswith("ConfigError: README.md contains the Hub token; refusing to publish it")
    assert result["retried"]["tag"] == "v1" and hub.refs(REPO, repo_type="model")["tags"] == {"v1": result["retried"]["sha"]}
    assert [r.status for r in hub.requests_matching("POST", rf"^/api/models/{REPO}/commit/main")] == [503, 200]
    assert "retrying in 0 s (attempt 2 of 3)" in printed
    assert all("\n" not in value for value in result.values() if isinstance(value, str))
    assert SECRET not in printed and "hf_read_only_model_token" not in printed
    assert all(SECRET.encode() not in c for c in hub.files(REPO, repo_type="model").values())


# ---------------------------------------------------------------------- offline: nothing reaches the network

RESAVE = "re-save the model with save_pretrained, which writes model.safetensors"


def _pickle_only(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"never unpickled")


def _no_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _other_dim(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "embedding_dim": 32}))


@pytest.mark.parametrize("damage, needle", [
    (_pickle_only, "holds only pickle weights (pytorch_model.bin); models are published as model.safetensors only"),
    (_no_weights, "has no model.safetensors: it is not a saved model"),
    (lambda f: (f / "config.json").unlink(), "has no config.json"),
    (lambda f: (f / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    (lambda f: (f / "scoremix.json").write_text("[1, 2]"), "scoremix.json is not a JSON object"),
    (_other_dim, "does not load"),
    (shutil.rmtree, "does not exist"),
])
def test_unusable_model_folders_are_refused_before_any_token_or_network(tmp_path, damage, needle):
    folder = tmp_path / "model"
    _saved_model(folder, seed=0)
    damage(folder)
    # conftest: no token and HF_HUB_OFFLINE; a check done after resolving the token would raise "no token" instead.
    with pytest.raises(ModelError) as info:
        push_model(ModelPushConfig(folder, REPO, tag="v1"), load=load_discriminator)
    assert needle in info.value.message and "\n" not in str(info.value)
    # pickle weights: re-save them; anything else: push what `train` writes
    assert info.value.hint == (RESAVE if damage is _pickle_only else FIX)


@pytest.mark.parametrize("revision", ["v1", None])
def test_staged_files_are_exactly_the_model_files_with_a_public_card(tmp_path, revision):
    folder = tmp_path / "model"
    _saved_model(folder, seed=0)
    with staged_model(folder, REPO, revision) as stage:
        staged = {p.relative_to(stage).as_posix(): p.read_bytes() for p in stage.rglob("*") if p.is_file()}
    assert sorted(staged) == ["README.md", "config.json", "model.safetensors", "scoremix.json"]  # no checkpoints, no log
    assert staged["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert staged["config.json"] == (folder / "config.json").read_bytes()
    assert staged["README.md"].decode() == _public_card(folder, revision)
    assert json.loads(staged["scoremix.json"]) == _public_meta(folder)
    assert (folder / "README.md").read_text().count(str(folder)) == 3  # the user's folder is left as it was


def test_a_folder_without_card_or_metadata_stages_only_the_weights_and_config(tmp_path):
    folder = tmp_path / "bare"
    SmallCNN(in_channels=1, image_size=8, embedding_dim=16).save_pretrained(folder)
    (folder / "README.md").unlink()  # the mixin's generic card
    with staged_model(folder, REPO, "v1") as stage:
        assert sorted(p.name for p in stage.iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("text, expected", [
    ("/home/alice/runs/net", "local:net"),
    ('"out": "/tmp/x/model-a/"', '"out": "local:model-a"'),
    ("lfw:/data/lfw.bin and ./runs/a and ../b/c and ~/faces", "lfw:local:lfw.bin and local:a and local:c and local:faces"),
    ("imagefolder /abs/faces at 3f1c", "imagefolder local:faces at 3f1c"),
    ("https://huggingface.co/org/net", "https://huggingface.co/org/net"),
    ("org/net real/synthetic image/png 1/2 mnist-5k@v1", "org/net real/synthetic image/png 1/2 mnist-5k@v1"),
])
def test_local_paths_are_reduced_to_their_last_part(text, expected):
    assert public_text(text) == expected


def test_model_push_config_names_the_train_flag_and_hides_the_token():
    from scoremix_ds.cli.boundary import for_command

    with pytest.raises(ConfigError, match="repo_id 'not a repo'") as info:  # the library names the field...
        ModelPushConfig("out", "not a repo")
    assert for_command(info.value, ["train"]).message.startswith("--push-to 'not a repo'")  # ...train its flag
    with pytest.raises(ConfigError, match="tag cannot be combined with create_pr"):
        ModelPushConfig("out", REPO, tag="v1", create_pr=True)
    config = ModelPushConfig("out", REPO, tag="v1", token=SECRET)
    assert SECRET not in repr(config) and repr(config).startswith("ModelPushConfig(folder='out'")
