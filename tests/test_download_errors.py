"""Hub download failures are mapped ONCE (``core.hub_client.map_error``): the generator and the discriminator
loaders both raise what :func:`~scoremix_ds.core.hub_client.download_errors` makes of them, one line each."""

from __future__ import annotations

import httpx2
import pytest
from huggingface_hub.errors import (
    HFValidationError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from scoremix_ds.core.errors import ModelError
from scoremix_ds.core.hub_client import download_errors, map_error


def _response(status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("GET", "https://hub.invalid/api"))


@pytest.mark.parametrize("exc, needle", [
    (HFValidationError("bad id"), "'org/m' is neither a local folder nor a Hub id"),
    (LocalEntryNotFoundError("offline"), "org/m is not in the local cache and the Hub at"),
    (RepositoryNotFoundError("x", response=_response(404)), "repository org/m not found on"),
    (RevisionNotFoundError("x", response=_response(404)), "revision not found in org/m"),
    (RemoteEntryNotFoundError("x", response=_response(404)), "org/m lacks config.json or model.safetensors"),
    (PermissionError(13, "Permission denied"), "PermissionError"),
])
def test_each_download_failure_is_one_model_error(exc, needle):
    with pytest.raises(ModelError) as info:
        with download_errors("discriminator", "org/m", "v1", "discriminator", needs="config.json or model.safetensors"):
            raise exc
    error = info.value
    assert error.message.startswith("cannot fetch discriminator 'org/m' (revision v1): ") and needle in error.message
    assert "\n" not in str(error) and error.hint and error.field == "discriminator"
    assert error.__cause__ is exc


def test_the_mapping_is_the_push_mapping():
    """A download and a push word the same failure the same way (the action aside)."""
    exc = RepositoryNotFoundError("x", response=_response(404))
    assert map_error(exc, "org/m", "uploading to org/m", None).message == (
        map_error(exc, "org/m", "", None).message + " while uploading to org/m")


def test_bugs_are_not_mapped():
    with pytest.raises(KeyError):
        with download_errors("generator", "org/m", None, "generator"):
            raise KeyError("a bug stays a bug")


def test_both_loaders_go_through_it():
    """Offline (conftest) and uncached: each loader names itself, the id and the revision."""
    from scoremix_ds.discriminators.loading import load_discriminator
    from scoremix_ds.generators.loading import load_generator

    for load, what in ((load_generator, "generator"), (load_discriminator, "discriminator")):
        with pytest.raises(ModelError) as info:
            load("org/never-cached@v9")
        assert info.value.message.startswith(f"cannot fetch {what} 'org/never-cached' (revision v9): ")
        assert "not in the local cache" in info.value.message
