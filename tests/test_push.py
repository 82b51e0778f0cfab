"""``scoremix-ds push`` / ``versions`` against the LoopbackHub, with the REAL huggingface_hub and datasets clients.

Every push runs the CLI in a fresh interpreter (``python -m scoremix_ds``) and every load runs in another one that
imports only ``datasets``; the server records every request, so the tests check what reached the "Hub".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hubfixtures import ROW_KEY_CODE, build_tiny, local_rows, make_tiny_inputs, run_cli, run_plain_datasets

from scoremix_ds.cli import main
from scoremix_ds.core.errors import ConfigError
from scoremix_ds.hub.push import PushConfig
from scoremix_ds.hub.stage import public_card, public_manifest
from fixtures.hub_server import LoopbackHub

SECRET = "hf_this_token_must_never_be_printed_0123456789"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Two tiny datasets, built once for the module: v1 (distant, seed 0, mix + repro) and v2 (close, seed 1, mix)."""
    root = tmp_path_factory.mktemp("push-builds")
    inputs = make_tiny_inputs(root)  # sealed off like every test: conftest's session-wide seal
    return {"v1": build_tiny(inputs, root / "v1", strategy="distant", seed=0),
            "v2": build_tiny(inputs, root / "v2", strategy="close", seed=1, repro=False)}


@pytest.fixture
def cli(hub, tmp_path):
    def run(*args: str, **kwargs):
        return run_cli(hub, tmp_path / "hf_home", *args, **kwargs)

    return run


def _commit_titles(hub: LoopbackHub, repo: str, revision: str = "main") -> list[str]:
    return [c.title for c in hub.commits(repo, revision=revision)]


def _load_code(repo: str, revisions: list[str]) -> str:
    return ROW_KEY_CODE + f"""
import datasets
for rev in {revisions!r}:
    ds = datasets.load_dataset({repo!r}, "mix", revision=rev, split="train")
    result[rev] = sorted(row_key(r) for r in ds.cast_column("image", datasets.Image(decode=False)))
    stream = datasets.load_dataset({repo!r}, "mix", revision=rev, split="train", streaming=True)
    result[rev + ":stream"] = sorted(row_key(r) for r in stream.cast_column("image", datasets.Image(decode=False)))
result["v1:repro"] = datasets.load_dataset({repo!r}, "repro", revision="v1", split="train").num_rows
"""


# ---------------------------------------------------------------------- the round trip


def test_push_tag_push_tag_then_both_versions_load_in_a_plain_datasets_process(hub, cli, built, tmp_path):
    repo = "org/set"
    first = cli("push", str(built["v1"]), "--repo", repo, "--tag", "v1")
    assert first.rc == 0, first.err
    v1 = hub.refs(repo)["tags"]["v1"]
    assert v1 == hub.commits(repo)[0].sha and f"commit {v1[:8]}" in first.out  # the tag is on the pushed commit
    assert "revision='v1'" in first.out

    again = cli("push", str(built["v1"]), "--repo", repo, "--tag", "v1")  # the same command, re-run
    assert again.rc == 0 and "no new commit" in again.out, again.err
    assert len(hub.commits(repo)) == 2  # initial + v1

    second = cli("push", str(built["v2"]), "--repo", repo, "--tag", "v2")
    assert second.rc == 0, second.err
    refs = hub.refs(repo)
    assert refs["tags"] == {"v1": v1, "v2": hub.commits(repo)[0].sha} and refs["branches"]["main"] == refs["tags"]["v2"]

    # Pushing other content under an existing tag is refused before anything is uploaded; the tag stays put.
    puts_before = len(hub.requests_matching("PUT", r"^/_lfs/upload/"))
    clash = cli("push", str(built["v1"]), "--repo", repo, "--tag", "v2")
    assert clash.rc == 2 and len(clash.error_lines) == 1 and "--force-tag" in clash.error_lines[0], clash.err
    assert hub.refs(repo)["tags"]["v2"] == refs["tags"]["v2"] and len(hub.commits(repo)) == 3
    assert len(hub.requests_matching("PUT", r"^/_lfs/upload/")) == puts_before

    # Each version loads with plain `datasets` in a fresh process, eagerly and streaming, with exactly its rows.
    loaded = run_plain_datasets(hub, tmp_path / "hf_home_loader", tmp_path / "loader", _load_code(repo, ["v1", "v2"]))
    assert loaded["scoremix_imported"] is False
    for version in ("v1", "v2"):
        assert loaded[version] == loaded[version + ":stream"] == local_rows(built[version])
    assert loaded["v1"] != loaded["v2"] and loaded["v1:repro"] == len(local_rows(built["v1"], "repro")) == 12
    # v2 has no repro config: v1's repro shards were deleted from data/ in v2's commit, not left to be loaded.
    assert sorted(p for p in hub.files(repo, "v2") if p.startswith("data/")) == ["data/mix/train-00000.parquet"]

    # The card is published with the load snippet pinned to the version; no local path or token in any file.
    card = hub.files(repo, "v1")["README.md"].decode()
    assert 'load_dataset("org/set", "mix", split="train", revision="v1")' in card
    assert "path/to/this/dataset" not in card and "preview.png" in hub.files(repo, "v1")
    for path, data in hub.files(repo, "v2").items():
        assert str(tmp_path.parent).encode() not in data and str(Path.home()).encode() not in data, path
        assert hub.WRITE_TOKEN.encode() not in data, path

    listing = cli("versions", repo)
    assert listing.rc == 0, listing.err
    lines = {line.split()[0]: line for line in listing.out.splitlines()[1:]}
    assert set(lines) == {"v1", "v2"}
    assert " distant " in lines["v1"] and " close " in lines["v2"] and "mix 6" in lines["v1"]
    assert v1[:8] in lines["v1"]

    moved = cli("push", str(built["v1"]), "--repo", repo, "--tag", "v2", "--force-tag")
    assert moved.rc == 0, moved.err
    assert hub.refs(repo)["tags"] == {"v1": v1, "v2": hub.commits(repo)[0].sha}
    assert hub.files(repo, "v2")["manifest.json"] == hub.files(repo, "v1")["manifest.json"]


def test_branch_push_creates_the_branch_and_an_identical_push_makes_no_commit_and_pr(hub, cli, built):
    repo = "org/branchy"
    for _ in range(2):
        run = cli("push", str(built["v1"]), "--repo", repo, "--revision", "dev")
        assert run.rc == 0, run.err
    assert "no new commit" in run.out and "revision='dev'" in run.out
    assert _commit_titles(hub, repo) == ["initial commit"]  # main untouched
    assert len(hub.commits(repo, revision="dev")) == 2  # initial + one push: the identical re-push made none
    assert 'revision="dev"' in hub.files(repo, "dev")["README.md"].decode()

    pr = cli("push", str(built["v1"]), "--repo", repo, "--create-pr", "--commit-message", "Propose v1")
    assert pr.rc == 0 and "/discussions/1" in pr.out, pr.err
    pulls = hub.refs(repo)["pulls"]
    assert list(pulls) == ["refs/pr/1"] and hub.commits(repo, revision="refs/pr/1")[0].title == "Propose v1"
    assert _commit_titles(hub, repo) == ["initial commit"]  # a PR does not move main


# ---------------------------------------------------------------------- failures: retried, resumed, never tagged


def test_failed_uploads_are_retried_resumed_and_never_tagged(hub, cli, built):
    repo = "org/flaky"
    lfs_files = 3  # preview.png and the two parquet shards go through LFS
    # Run 1: one PUT loses its connection (the client retries it), another is refused: the push fails.
    hub.fail_next("PUT", r"^/_lfs/upload/", status="drop")
    hub.fail_next("PUT", r"^/_lfs/upload/", status=400)
    failed = cli("push", str(built["v1"]), "--repo", repo, "--tag", "v1")
    assert failed.rc == 2 and len(failed.error_lines) == 1 and "400" in failed.error_lines[0], failed.err
    assert hub.refs(repo)["tags"] == {} and _commit_titles(hub, repo) == ["initial commit"]
    uploaded_first = [r.status for r in hub.requests_matching("PUT", r"^/_lfs/upload/")].count(200)
    assert uploaded_first < lfs_files

    # Run 2: the commit POST answers 500 once; the push retries the step and uploads only what was missing.
    hub.fail_next("POST", r"/commit/", status=500)
    rerun = cli("push", str(built["v1"]), "--repo", repo, "--tag", "v1")
    assert rerun.rc == 0, rerun.err
    assert "retrying" in rerun.err
    assert [r.status for r in hub.requests_matching("PUT", r"^/_lfs/upload/")].count(200) == lfs_files
    assert [r.status for r in hub.requests_matching("POST", r"/commit/")] == [500, 200]
    assert hub.refs(repo)["tags"] == {"v1": hub.commits(repo)[0].sha}

    # Run 3: the connection drops, then the server keeps failing: bounded retries, one clear line, no tag.
    hub.fail_next("POST", r"/commit/", status="drop")
    hub.fail_next("POST", r"/commit/", status=503, times=2)
    down = cli("push", str(built["v2"]), "--repo", repo, "--tag", "v2")
    assert down.rc == 2 and len(down.error_lines) == 1, down.err
    assert "503" in down.error_lines[0] and "after 3 attempts" in down.error_lines[0] and "re-run" in down.error_lines[0]
    assert set(hub.refs(repo)["tags"]) == {"v1"} and len(hub.commits(repo)) == 2
    assert hub.pending_faults() == 0


def test_a_commit_whose_answer_is_lost_is_retried_without_a_second_commit(hub, cli, built):
    # huggingface_hub does not retry the commit POST itself (a retry after a lost answer could commit twice), which
    # is why the push retries its upload step: here the Hub applies the commit but the answer is cut halfway, the
    # retry finds nothing left to change (the client skips an empty commit and returns the head), and the tag goes
    # on the one commit made.
    repo = "org/lost-answer"
    hub.fail_next("POST", r"/commit/", status="truncate")
    pushed = cli("push", str(built["v1"]), "--repo", repo, "--tag", "v1")
    assert pushed.rc == 0 and "retrying" in pushed.err, pushed.err
    assert len(hub.requests_matching("POST", r"/commit/")) == 1  # the retry had nothing to commit
    assert len(hub.commits(repo)) == 2  # "initial commit" and the push's one commit
    assert hub.refs(repo)["tags"] == {"v1": hub.commits(repo)[0].sha}
    assert hub.pending_faults() == 0


def test_rejected_tokens_get_one_line_without_the_token(hub, cli, built):
    bogus = cli("push", str(built["v1"]), "--repo", "org/guarded", "--token", SECRET)
    assert bogus.rc == 2 and len(bogus.error_lines) == 1, bogus.err
    assert "401" in bogus.error_lines[0] and "--token" in bogus.error_lines[0]
    reader = cli("push", str(built["v1"]), "--repo", "org/guarded", token=hub.READ_TOKEN)
    assert reader.rc == 2 and len(reader.error_lines) == 1, reader.err
    assert "403" in reader.error_lines[0] and "write access" in reader.error_lines[0]
    for run, token in ((bogus, SECRET), (reader, hub.READ_TOKEN)):
        assert token not in run.out + run.err
    assert not hub.repo_exists("org/guarded")


# ---------------------------------------------------------------------- refused before any network


def _spoil(folder: Path, how: str) -> None:
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if how == "missing shard":
        (folder / "data" / "repro" / "train-00000.parquet").unlink()
    elif how == "unfinished":
        manifest["complete"] = False
    elif how == "changed shard":
        with (folder / "data" / "mix" / "train-00000.parquet").open("ab") as fh:
            fh.write(b"\0")
    elif how == "stray shard":
        shutil.copy(folder / "data" / "mix" / "train-00000.parquet", folder / "data" / "mix" / "train-00099.parquet")
    elif how == "no manifest":
        manifest_path.unlink()
        return
    elif how == "job-array part":
        manifest["part"] = {"index": 0, "count": 2}
    elif how == "no card":
        (folder / "README.md").unlink()
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("how, needle, fix", [
    ("missing shard", "data/repro/train-00000.parquet listed in manifest.json is missing", "build"),
    ("unfinished", "unfinished", "re-run the same scoremix-ds build command to finish it"),
    ("changed shard", "does not match the sha256", "build"),
    ("stray shard", "train-00099.parquet, which manifest.json does not list", "remove"),
    ("no manifest", "not a scoremix-ds dataset", "--out"),
    ("no card", "no README.md", "build"),
    ("job-array part", "part 0 of 2 of a job-array build", "scoremix-ds merge"),
])
def test_incomplete_dataset_folder_is_refused_before_anything_is_pushed(capsys, built, tmp_path, how, needle, fix):
    folder = tmp_path / "copy"
    shutil.copytree(built["v1"], folder)
    _spoil(folder, how)
    rc = main(["push", str(folder), "--repo", "org/set", "--token", SECRET])
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert rc == 2 and len(line) == 1 and needle in line[0] and fix in line[0], err
    assert SECRET not in err


def test_invalid_repo_id_and_missing_token_name_the_flag(capsys, built):  # no token anywhere: conftest's seal
    for repo in ("not a repo", "org/name/extra", "org/bad..name", "justname"):
        assert main(["push", str(built["v1"]), "--repo", repo]) == 2
        assert "--repo" in capsys.readouterr().err
    assert main(["push", str(built["v1"]), "--repo", "org/set"]) == 2
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and "--token" in err and "hf auth login" in err
    assert main(["versions", "not/a/repo"]) == 2 and "ORG/NAME" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, needle", [
    (dict(tag="v1", create_pr=True), "create_pr"),
    (dict(revision="dev", create_pr=True), "revision"),
    (dict(force_tag=True), "force_tag needs a tag"),
    (dict(tag="v 1"), "tag"),
    (dict(tag="v1..2"), "tag"),
    (dict(revision="-dev"), "revision"),
])
def test_push_config_refuses_contradictory_flags(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        PushConfig(folder="x", repo_id="org/set", **kwargs)


def test_token_is_kept_out_of_the_config_repr():
    assert SECRET not in repr(PushConfig(folder="x", repo_id="org/set", token=SECRET))


# ---------------------------------------------------------------------- what is staged


def test_card_load_snippets_point_at_the_repo_and_version():
    text = ('mix = load_dataset("path/to/this/dataset", "mix", split="train")   # x\n'
            'repro = load_dataset("path/to/this/dataset", "repro", split="train")\nsee path/to/this/dataset\n')
    out = public_card(text, "org/set", "v1.0.0")
    assert 'load_dataset("org/set", "mix", split="train", revision="v1.0.0")   # x' in out
    assert 'load_dataset("org/set", "repro", split="train", revision="v1.0.0")' in out
    assert "see org/set" in out and "path/to" not in out
    assert 'load_dataset("org/set", "mix", split="train")' in public_card(text, "org/set", None)


def test_manifest_local_paths_are_reduced_like_the_card():
    manifest = {"config": {"generator": "/home/me/models/gen", "real_data": "mnist-5k", "discriminator": "./disc",
                           "weak_generator": "models/weak", "seed": 3}, "fingerprint": "abc"}
    public = public_manifest(manifest, card_build={"weak_generator": "local:weak", "seed": 3})
    assert public["config"] == {"generator": "local:gen", "real_data": "mnist-5k", "discriminator": "local:disc",
                                "weak_generator": "local:weak", "seed": 3}
    assert manifest["config"]["generator"] == "/home/me/models/gen"  # the input is not modified


def test_build_push_to_publishes_and_tags_after_building(hub, cli, tmp_path):
    inputs = make_tiny_inputs(tmp_path / "in")
    out = tmp_path / "pushed-build"
    args = ["build", "--generator", inputs["generator"], "--discriminator", inputs["discriminator"], "--real-data",
            inputs["real_data"], "--pairs", "2", "--per-identity", "1", "--steps", "2", "--out", str(out), "--no-progress"]
    bad = cli(*args, "--push-to", "not a repo id!")
    # refused before sampling, naming build's own flag (it has no --repo: the old hint named push's)
    assert bad.rc == 2 and "--push-to" in bad.error_lines[0] and "--repo" not in bad.error_lines[0]
    assert not out.exists()
    run = cli(*args, "--push-to", "org/built", "--tag", "v1")
    assert run.rc == 0, run.err[-2000:]
    assert "tagged v1" in run.out
    tags = hub.refs("org/built")["tags"]
    assert set(tags) == {"v1"} and tags["v1"] == hub.commits("org/built")[0].sha


def test_tag_without_push_to_is_refused(capsys, tmp_path):
    from scoremix_ds.cli import main

    assert main(["build", "--tag", "v1", "--out", str(tmp_path / "o")]) == 2
    assert "--push-to" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_build_push_to_checks_token_access_and_tag_before_sampling(hub, cli, tmp_path):
    """A push that would fail after the build fails before it instead (issue 24.1): in seconds, nothing sampled."""
    inputs = make_tiny_inputs(tmp_path / "in")

    def args(out, seed):
        return ["build", "--generator", inputs["generator"], "--discriminator", inputs["discriminator"], "--real-data",
                inputs["real_data"], "--pairs", "2", "--per-identity", "1", "--steps", "2", "--seed", str(seed),
                "--out", str(tmp_path / out), "--no-progress", "--push-to", "org/pre"]

    first = cli(*args("a", 0), "--tag", "v1")
    assert first.rc == 0, first.err[-2000:]
    other = cli(*args("b", 1), "--tag", "v1")  # other rows under an existing tag: the push would be refused
    assert other.rc == 2 and "tag v1 already exists" in other.error_lines[0] and "--tag" in other.error_lines[0]
    assert not (tmp_path / "b").exists()
    same = cli(*args("c", 0), "--tag", "v1")  # the same build again (same fingerprint): the tag already holds it
    assert same.rc == 0 and "nothing to push" in same.err + same.out, same.err[-2000:]
    for token, needle in (("", "no Hugging Face token"), (hub.READ_TOKEN, "read-only")):
        refused = cli(*args("d", 2), "--tag", "v2", token=token)
        assert refused.rc == 2 and needle in refused.error_lines[0], refused.err[-1000:]
        assert not (tmp_path / "d").exists()
    assert set(hub.refs("org/pre")["tags"]) == {"v1"}
