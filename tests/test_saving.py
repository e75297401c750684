"""Network.save and loopbp.load: a bit-exact round trip, and every bad file refused."""

import io

import numpy as np
import pytest

import loopbp
from loopbp.saving import FILE_KEYS


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    net = loopbp.Network([4, 7, 3, 2], ["relu", "tanh", "identity"], dtype=dtype, seed=3)
    X = np.random.default_rng(0).standard_normal((4, 9)).astype(dtype)
    net.fit(X, np.ones((2, 9), dtype), learning_rate=0.01, epochs=3, progress=False)
    path = tmp_path / "net.npz"
    net.save(path)
    loaded = loopbp.load(path)
    assert loaded.sizes == net.sizes and loaded.activations == net.activations and loaded.dtype == net.dtype
    assert loaded.theta.tobytes() == net.theta.tobytes()
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))


def test_save_writes_exactly_the_path_given(tmp_path):
    path = tmp_path / "model"
    loopbp.Network([2, 1], ["identity"], seed=0).save(path)
    assert path.exists() and not (tmp_path / "model.npz").exists()
    assert loopbp.load(str(path)).sizes == (2, 1)


def _saved_fields(**changes):
    net = loopbp.Network([3, 4, 2], ["sigmoid", "identity"], seed=0)
    buffer = io.BytesIO()
    fields = {
        "format": np.array("loopbp-network"),
        "version": np.array(1),
        "sizes": np.array([3, 4, 2]),
        "activations": np.array(["sigmoid", "identity"]),
        "dtype": np.array("float64"),
        "theta": net.theta.copy(),
    }
    fields.update(changes)
    for key, value in list(fields.items()):
        if value is None:
            del fields[key]
    np.savez(buffer, **fields)
    return buffer.getvalue()


def test_the_fields_written_are_the_fields_read(tmp_path):
    # _saved_fields builds files by hand; check it matches what save writes.
    path = tmp_path / "net.npz"
    loopbp.Network([3, 4, 2], ["sigmoid", "identity"], seed=0).save(path)
    with np.load(path) as f:
        assert sorted(f.files) == sorted(FILE_KEYS)
    (tmp_path / "hand.npz").write_bytes(_saved_fields())
    assert loopbp.load(tmp_path / "hand.npz").theta.tobytes() == loopbp.load(path).theta.tobytes()


BAD_FILES = [
    ("wrong-format", {"format": np.array("something-else")}, "format must be 'loopbp-network'"),
    ("newer-version", {"version": np.array(2)}, "version must be 1"),
    ("missing-theta", {"theta": None}, "lacks ['theta']"),
    ("extra-field", {"extra": np.zeros(1)}, "unexpected ['extra']"),
    ("sizes-too-short", {"sizes": np.array([3])}, "sizes must list at least n^0 and n^1 (two widths)"),
    ("sizes-zero", {"sizes": np.array([3, 0, 2])}, "sizes[1] must be at least 1, got 0"),
    ("sizes-float", {"sizes": np.array([3.0, 4.0, 2.0])}, "field 'sizes' must be a 1-D array of kind 'iu'"),
    ("unknown-activation", {"activations": np.array(["sigmoid", "softmax"])}, "unknown activation 'softmax'"),
    (
        "activation-count",
        {"activations": np.array(["sigmoid"])},
        "activations must have one name per layer, L = 2",
    ),
    ("dtype-float16", {"dtype": np.array("float16")}, "dtype must be 'float32' or 'float64'"),
    ("theta-short", {"theta": np.zeros(5)}, "theta must be 26 float64 values"),
    ("theta-wrong-dtype", {"theta": np.zeros(26, np.float32)}, "got 26 float32"),
    ("theta-2-D", {"theta": np.zeros((2, 13))}, "field 'theta' must be a 1-D array"),
    ("theta-nan", {"theta": np.full(26, np.nan)}, "theta must be finite, got nan at index (0,)"),
    # An object array can only be stored as a pickle, which allow_pickle=False refuses.
    ("theta-objects", {"theta": np.array([None] * 26, dtype=object)}, "are never unpickled"),
]


@pytest.mark.parametrize("name,changes,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_refused(tmp_path, name, changes, message):
    path = tmp_path / f"{name}.npz"
    path.write_bytes(_saved_fields(**changes))
    with pytest.raises(ValueError) as info:
        loopbp.load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_truncated_and_foreign_files_are_refused(tmp_path):
    whole = _saved_fields()
    (tmp_path / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.npz").write_text("not a network")
    np.save(tmp_path / "single.npy", np.zeros(3))
    corrupt = bytearray(whole)
    corrupt[len(corrupt) // 2] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(corrupt))
    for name in ("truncated.npz", "text.npz", "single.npy", "flipped.npz"):
        with pytest.raises(ValueError, match="not a readable loopbp network file|holds a single array"):
            loopbp.load(tmp_path / name)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        loopbp.load(tmp_path / "absent.npz")


@pytest.mark.parametrize("content", [b"junk", b"", b"\x80\x04K\x01.", b"PK\x03\x04 not really a zip"])
def test_the_error_never_suggests_allow_pickle(tmp_path, content):
    # NumPy's own message for such files advises allow_pickle=, which load must never take.
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a readable loopbp network file") as info:
        loopbp.load(path)
    assert "allow_pickle" not in str(info.value)


@pytest.mark.parametrize("path", [3, None, ["net.npz"]])
def test_a_path_that_is_not_a_path_is_a_type_error(path):
    # 3 must not be taken for a file descriptor.
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        loopbp.load(path)
