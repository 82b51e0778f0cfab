"""One rule for the public (card) form of a reference, ``scoremix_ds.core.refs.public_ref``, on the cases each of
the four rules it replaced handled (build cards, real-data attribution, pushed manifests and recipes, model cards)."""

from __future__ import annotations

import pytest

from scoremix_ds.core.refs import public_ref, public_text


@pytest.mark.parametrize("ref, expected", [
    (None, None),
    # build cards and plan files (was synthesis/finalize.public_ref)
    ("/home/alice/runs/gen", "local:gen"),
    ("/home/alice/runs/gen/", "local:gen"),
    ("./runs/gen", "local:gen"),
    ("../gen", "local:gen"),
    ("org/gen", "org/gen"),
    ("org/gen@v1", "org/gen@v1"),
    ("mnist-5k", "mnist-5k"),
    ("mnist-5k-train[0-6]", "mnist-5k-train[0-6]"),
    ("default", "default"),
    # a home-relative path, which the card rule let through (was sources/readers.public_ref_text)
    ("~/faces", "local:faces"),
    ("~/data/faces@v1", "local:faces@v1"),
    (".faces", "local:.faces"),
    # Windows-style paths (was hub/stage._looks_local)
    ("..\\data\\faces", "local:faces"),
    ("C:\\Users\\alice\\faces", "local:faces"),
    # already public
    ("local:gen", "local:gen"),
])
def test_public_ref(ref, expected):
    assert public_ref(ref) == expected


def test_an_existing_relative_folder_is_local_a_missing_one_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "gen").mkdir(parents=True)
    assert public_ref("runs/gen") == "local:gen"
    assert public_ref("runs/other") == "runs/other"  # reads as the Hub id runs/other
    (tmp_path / "faces").mkdir()
    assert public_ref("faces") == "faces"  # a bare name reveals no path (and may be a built-in name)


def test_public_text_reduces_every_path_in_it_the_same_way():
    text = 'trained on ~/faces and /abs/glyphs; {"out": "./runs/a/"}; see https://huggingface.co/org/net or org/net'
    assert public_text(text) == ('trained on local:faces and local:glyphs; {"out": "local:a"}; '
                                 'see https://huggingface.co/org/net or org/net')


@pytest.mark.parametrize("ref, hub", [
    ("org/name", True), ("my-org/faces_v2.1", True), ("org/na me", False), ("mnist-5k", False), ("/abs/org/name", False), ("./org", False),
    ("~/faces", False), ("a/b/c", False), ("org\\name", False), (".hidden/name", False),
])
def test_could_be_hub_id(ref, hub):
    """What the generator and discriminator loaders try to download, once no local folder of that name exists."""
    from scoremix_ds.core.refs import could_be_hub_id

    assert could_be_hub_id(ref) is hub
