"""Keep Numba's on-disk cache of loopbp's kernels all of one version.

Numba decides whether a cached kernel is stale from its own source file alone. The
drivers in ``passes.py`` call parallel kernels in ``tiled_kernels.py`` and ``kernels.py``;
when only some of these files change (an edit, an editable install), Numba recompiles the
drivers against callees it loads from the cache, and that mix was seen to crash (a
segmentation fault when the recompiled drivers were next loaded; the Numba issues
#8578 and #10128 describe the same class). An installed release rewrites every file,
so it never mixes; this guard covers the rest: at import it fingerprints every source
file of the package, and if the fingerprint differs from the one the cache was built
with, it deletes the package's cache files so that everything compiles again, together.

Only the default cache location (``__pycache__`` beside the sources) is handled; with
``NUMBA_CACHE_DIR`` set, or a read-only package directory, nothing is done.
"""

import hashlib
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_CACHE = os.path.join(_HERE, "__pycache__")
_STAMP = os.path.join(_CACHE, "loopbp-numba-sources.txt")


def sources_fingerprint():
    """A digest of the name, size and modification time of every .py file of loopbp."""
    digest = hashlib.sha1()
    for name in sorted(os.listdir(_HERE)):
        if name.endswith(".py"):
            stat = os.stat(os.path.join(_HERE, name))
            digest.update(f"{name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def keep_consistent():
    """Delete loopbp's Numba cache files if they were built from other sources."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    try:
        # Made here if need be, so that the stamp is written before the first compile.
        os.makedirs(_CACHE, exist_ok=True)
    except OSError:
        return
    if not os.access(_CACHE, os.W_OK):
        return
    fingerprint = sources_fingerprint()
    try:
        with open(_STAMP) as f:
            if f.read() == fingerprint:
                return
    except OSError:
        pass
    for name in os.listdir(_CACHE):
        if name.endswith((".nbi", ".nbc")):
            try:
                os.remove(os.path.join(_CACHE, name))
            except OSError:  # another process got there first
                pass
    try:
        with open(_STAMP, "w") as f:
            f.write(fingerprint)
    except OSError:
        pass
