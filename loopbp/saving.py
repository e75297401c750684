"""`Network.save`'s file format: writing it (`save`) and reading it back (`read`).

A file is a .npz archive of plain arrays, never pickles: the format name and version,
the sizes, the activation names, the dtype and theta. `read` checks the archive and the
type of each field; `loopbp.load` builds the network from them, leaving the network's own
checks to `Network` and ``loopbp.validation`` and adding the file name to their messages.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .network import Network

#: What `save` writes into its .npz file, and what `load` demands.
FILE_FORMAT = "loopbp-network"
FILE_VERSION = 1
FILE_KEYS = ("format", "version", "sizes", "activations", "dtype", "theta")


def save(net: Network, path: str | os.PathLike) -> None:
    """`Network.save`: write the network to `path` (see its docstring)."""
    with open(path, "wb") as f:
        np.savez(
            f,
            format=np.array(FILE_FORMAT),
            version=np.array(FILE_VERSION),
            sizes=np.array(net.sizes, dtype=np.int64),
            activations=np.array(net.activations),
            dtype=np.array(net.dtype.name),
            theta=net.theta,
        )


def read(path: str | os.PathLike) -> tuple[str, list[int], list[str], str, np.ndarray]:
    """The fields of a network file written by `save`: (path, sizes, activations, dtype, theta).

    `path` comes back as a str, for messages. Checks the archive and the type of each field
    (see `loopbp.load`, which builds the network); raises ``ValueError`` naming the file.
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__} {path!r}") from None
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x93NUMPY"):
        raise ValueError(
            f"{path!s} is not a readable loopbp network file: it holds a single array, not the .npz "
            f"archive Network.save writes"
        )
    if not magic.startswith(b"PK\x03\x04"):
        # NumPy would try such a file as a pickle and advise allow_pickle=, which load
        # never passes.
        raise ValueError(
            f"{path!s} is not a readable loopbp network file: it is not a .npz archive "
            f"(Network.save writes a zip of .npy arrays)"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = sorted(set(FILE_KEYS) - set(f.files))
            extra = sorted(set(f.files) - set(FILE_KEYS))
            if missing or extra:
                raise ValueError(f"it lacks {missing} and has unexpected {extra}; expected {list(FILE_KEYS)}")
            fields = {key: f[key] for key in FILE_KEYS}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as err:  # zip, npy-header and pickle refusals all mean the same here
        reason = str(err)
        if "pickle" in reason:
            reason = (
                "it holds pickled Python objects; loopbp's files hold plain arrays and are never unpickled"
            )
        raise ValueError(f"{path!s} is not a readable loopbp network file: {reason}") from None
    return _fields_of(fields, path)


def _field(fields, key, path, kind, ndim):
    value = fields[key]
    if value.dtype.kind not in kind or value.ndim != ndim:
        raise ValueError(
            f"{path!s}: field {key!r} must be a {ndim}-D array of kind {kind!r}, "
            f"got {value.ndim}-D {value.dtype}"
        )
    return value


def _fields_of(fields, path):
    fmt = _field(fields, "format", path, "U", 0)
    if str(fmt) != FILE_FORMAT:
        raise ValueError(f"{path!s}: format must be {FILE_FORMAT!r}, got {str(fmt)!r}")
    version = _field(fields, "version", path, "iu", 0)
    if int(version) != FILE_VERSION:
        raise ValueError(f"{path!s}: version must be {FILE_VERSION}, got {int(version)}")
    sizes = _field(fields, "sizes", path, "iu", 1).tolist()
    activations = _field(fields, "activations", path, "U", 1).tolist()
    dtype = str(_field(fields, "dtype", path, "U", 0))
    if dtype not in ("float32", "float64"):
        # The format stores the dtype's name as `save` writes it, not any NumPy spelling.
        raise ValueError(f"{path!s}: dtype must be 'float32' or 'float64', got {dtype!r}")
    theta = _field(fields, "theta", path, "f", 1)
    return path, sizes, activations, dtype, theta
