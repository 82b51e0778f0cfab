"""The restricted ``.bin`` reader: good files of every writer round-trip; anything else is refused, nothing runs.

The malicious payloads are real: a control test shows ``pickle.loads`` of the same construction creates the file.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from fixtures.images import png_bytes, random_images
from scoremix_ds.core.errors import DataError
from scoremix_ds.evaluation.binfile import read_bin
from scoremix_ds.evaluation.verification_pairs import decode_images, pairs_from_bin


def _write(tmp_path, obj, protocol: int = 4, name: str = "x.bin"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


class _Touch:
    """Unpickling runs ``os.system("touch <path>")``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _Open:
    """Unpickling runs ``open(path, "w")``: creates the file without a shell."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_good_file_round_trips(tmp_path, protocol):
    images = random_images(4, size=(7, 5))
    issame = [True, False]
    path = _write(tmp_path, ([png_bytes(im) for im in images], issame), protocol)
    content = read_bin(path)
    assert content.issame.dtype == bool and content.issame.tolist() == issame
    decoded = decode_images(content.blobs)
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, images)
    pairs = pairs_from_bin(path)
    assert pairs.name == "x" and pairs.num_pairs == 2
    assert np.array_equal(pairs.images_a, images[0::2]) and np.array_equal(pairs.images_b, images[1::2])


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_writers_are_read_without_numpy_globals_running(tmp_path, protocol):
    """insightface's cfp2pack.py / agedb2pack2.py store cv2.imencode output (uint8 (N, 1) arrays); flags may be
    numpy bools or a bool array. Several arrays share one memoised dtype, as a real file does."""
    images = random_images(6, size=(7, 5), seed=1)
    blobs = [png_bytes(im) for im in images]
    arrays = [np.frombuffer(b, np.uint8).reshape(-1, 1) for b in blobs]
    for flags in ([np.True_, np.False_, np.True_], np.array([True, False, True])):
        content = read_bin(_write(tmp_path, (arrays, flags), protocol))
        assert content.blobs == tuple(blobs) and content.issame.tolist() == [True, False, True]


def test_python2_pickle_with_numpy_1_names(tmp_path):
    """A Python 2 writer: ``str`` images are SHORT_BINSTRING (read as bytes, like ``encoding='bytes'``), numpy 1.x
    calls its module ``numpy.core.multiarray``. Built from opcodes, as Python 3 cannot write py2 strings."""
    blob = png_bytes(random_images(1, size=(7, 5))[0])
    assert len(blob) < 256
    string = b"U" + bytes([len(blob)]) + blob  # SHORT_BINSTRING
    data = b"\x80\x02]q\x00(" + string + string + b"e]q\x01\x88a\x86q\x02."  # ([s, s], [True])
    content = read_bin(_write_raw(tmp_path, data))
    assert content.blobs == (blob, blob) and content.issame.tolist() == [True]
    numpy1 = pickle.dumps(([np.frombuffer(blob, np.uint8)] * 2, [np.False_]), protocol=2)
    numpy1 = numpy1.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")  # GLOBAL text is newline-ended
    assert b"numpy.core.multiarray\n_reconstruct" in numpy1
    assert read_bin(_write_raw(tmp_path, numpy1)).issame.tolist() == [False]


def _write_raw(tmp_path, data: bytes, name: str = "raw.bin"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_control_the_payloads_are_real(tmp_path):
    target = tmp_path / "created-by-pickle"
    pickle.loads(pickle.dumps(([_Open(target)], [True]), protocol=2))  # our own payload, harmless in tmp_path
    assert target.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("payload", [_Touch, _Open])
def test_malicious_file_is_refused_and_nothing_runs(tmp_path, protocol, payload):
    target = tmp_path / "pwned"
    blob = png_bytes(random_images(1, size=(7, 5))[0])
    path = _write(tmp_path, ([payload(target), blob], [True]), protocol)  # first, so protocol 0 reaches it too
    with pytest.raises(DataError, match="not an insightface verification .bin") as info:
        read_bin(path)
    assert not target.exists()
    assert "\n" not in str(info.value)


def test_inst_opcode_payload_is_refused(tmp_path):
    target = tmp_path / "pwned"
    data = b"(S'touch " + str(target).encode() + b"'\nios\nsystem\n."  # protocol 0 INST: os.system("touch ...")
    with pytest.raises(DataError):
        read_bin(_write_raw(tmp_path, data))
    assert not target.exists()


@pytest.mark.parametrize(
    "obj, message",
    [
        (([b"a", b"b"], [True], "extra"), "top level"),
        ({"bins": [b"a", b"b"], "issame": [True]}, "EMPTY_DICT"),
        (([[b"a"], b"b"], [True]), r"bins\[0\] is a list"),
        (([b"a", b"b"], [1]), "not a list of booleans"),
        (([b"a", b"b", b"c"], [True]), r"3 images for 1 pairs \(expected 2\)"),
        (([b"a", "text"], [True]), r"bins\[1\] is a str"),
        (([np.zeros(3, np.float32), b"b"], [True]), "call it does not allow|BUILD it does not allow"),
        (([b"a", b"b"], [np.int64(1)]), "call it does not allow"),
        (([b"a", b"b"], {True}), "EMPTY_SET"),
    ],
)
def test_wrong_structures_are_refused(tmp_path, obj, message):
    with pytest.raises(DataError, match=message):
        read_bin(_write(tmp_path, obj, protocol=4))


def test_numpy_global_used_off_pattern_is_refused(tmp_path):
    """``numpy.dtype`` is on the table, but only as dtype('u1'|'b1', False, True)."""
    data = pickle.dumps(([np.array([1.5]), b"b"], [True]), protocol=2)  # dtype('f8', ...)
    with pytest.raises(DataError, match="call it does not allow"):
        read_bin(_write_raw(tmp_path, data))


def test_truncated_missing_and_corrupt(tmp_path):
    data = pickle.dumps(([b"a" * 100, b"b"], [True]), protocol=4)
    with pytest.raises(DataError, match="malformed pickle"):
        read_bin(_write_raw(tmp_path, data[:60]))
    with pytest.raises(DataError, match="cannot read"):
        read_bin(tmp_path / "missing.bin")
    good = png_bytes(random_images(1, size=(7, 5))[0])
    with pytest.raises(DataError, match="image 1 does not decode"):
        pairs_from_bin(_write(tmp_path, ([good, b"not an image"], [True])))
    other = png_bytes(np.zeros((9, 9, 3), np.uint8))
    with pytest.raises(DataError, match="image 1 is"):
        pairs_from_bin(_write(tmp_path, ([good, other], [False])))
