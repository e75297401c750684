"""Where Numba keeps loopbp's compiled kernels, and when they are stale.

Numba's default puts a kernel's cache files in the ``__pycache__`` folder beside its
source. For an installed package that is inside ``site-packages``, where pip neither
records nor removes them: after ``pip uninstall`` the leftover folder made ``import
loopbp`` find an empty namespace package. So loopbp registers a cache locator of its
own (`LoopbpCacheLocator`), which Numba consults for loopbp's source files only, and
which keeps the cache in a per-user directory (`cache_dir`):

1. ``LOOPBP_CACHE_DIR``, when set;
2. else ``NUMBA_CACHE_DIR``, when set (the user asked Numba to cache there);
3. else the per-user cache directory: ``~/.cache/loopbp`` on Linux (or
   ``$XDG_CACHE_HOME/loopbp``), ``~/Library/Caches/loopbp`` on macOS,
   ``%LOCALAPPDATA%\\loopbp\\Cache`` on Windows;
4. else, where that cannot be written, a ``loopbp-cache`` folder in the temporary
   directory.

Inside it each installed copy of loopbp has a folder of its own, named after the hash of
its path, so two virtual environments never share files. ``loopbp cache`` prints the
directory and ``loopbp cache --clear`` deletes it; deleting it by hand is just as safe.

Staleness is judged for the package as a whole. Numba judges a cached kernel by its own
source file alone, but the drivers in ``passes.py`` call kernels in ``tiled_kernels.py``
and ``kernels.py``; when only some files changed, Numba recompiled the drivers against
callees loaded from the cache, and that mix crashed (a segmentation fault; Numba issues
#8578 and #10128 describe the class). The locator's source stamp is therefore a digest of
every source file of loopbp: a change to any one makes every kernel compile again.
"""

import functools
import glob
import hashlib
import os
import pickle
import shutil
import tempfile

import numba
from numba.core import caching, config

_HERE = os.path.dirname(os.path.abspath(__file__))


def _user_cache_root():
    try:
        # The appdirs that Numba ships and uses for its own user-wide cache.
        from numba.misc.appdirs import AppDirs

        return AppDirs(appname="loopbp", appauthor=False).user_cache_dir
    except Exception:  # pragma: no cover - an older or changed Numba
        return os.path.join(os.path.expanduser("~"), ".cache", "loopbp")


def cache_root():
    """The directory under which loopbp's compiled kernels are kept (see the module docstring)."""
    if os.environ.get("LOOPBP_CACHE_DIR"):
        return os.path.abspath(os.environ["LOOPBP_CACHE_DIR"])
    # Numba read NUMBA_CACHE_DIR when it was imported; follow what Numba itself does.
    if config.CACHE_DIR:
        return os.path.abspath(config.CACHE_DIR)
    return _user_cache_root()


def _fallback_root():
    return os.path.join(tempfile.gettempdir(), "loopbp-cache")


def cache_dir():
    """The folder of this copy of loopbp inside `cache_root`, where its kernels are cached."""
    return os.path.join(cache_root(), caching._CacheLocator.get_suitable_cache_subpath(__file__))


@functools.cache
def sources_fingerprint():
    """A SHA-256 digest of the name and contents of every .py file of loopbp."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(_HERE)):
        if name.endswith(".py"):
            with open(os.path.join(_HERE, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read() + b"\0")
    return digest.hexdigest()


class LoopbpCacheLocator(caching._CacheLocator):
    """Numba cache locator for loopbp's own kernels: a per-user directory, a package-wide stamp."""

    def __init__(self, py_func, py_file, root):
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(root, self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        return sources_fingerprint()

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _HERE:
            return None  # not loopbp's: Numba's own locators decide
        for root in (cache_root(), _fallback_root()):
            locator = cls(py_func, py_file, root)
            try:
                locator.ensure_cache_path()
            except OSError:
                continue
            return locator
        return None


def _impl_classes():
    # CacheImpl is named _CacheImpl before Numba 0.61 or so; both hold the locator list.
    for name in ("CacheImpl", "_CacheImpl"):
        impl = getattr(caching, name, None)
        if impl is not None and isinstance(getattr(impl, "_locator_classes", None), list):
            yield impl


def install():
    """Put `LoopbpCacheLocator` first in Numba's list of cache locators (once).

    Must run before loopbp's kernels are decorated: Numba picks a kernel's locator when
    its ``@njit(cache=True)`` runs.
    """
    for impl in _impl_classes():
        if LoopbpCacheLocator not in impl._locator_classes:
            impl._locator_classes.insert(0, LoopbpCacheLocator)


def clear():
    """Delete this copy of loopbp's cached kernels; returns the folder that was removed, or None."""
    folder = cache_dir()
    if not os.path.isdir(folder):
        return None
    shutil.rmtree(folder)
    return folder


def cache_size(folder=None):
    """Bytes in the files under `folder` (default: `cache_dir`)."""
    folder = cache_dir() if folder is None else folder
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.stat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def is_warm(dtype):
    """Whether the cache holds the loops backend's gradient compiled for `dtype` from these sources.

    Reads the index of ``passes.gradient_pass`` (the driver that calls every other kernel)
    the way Numba does; any doubt counts as cold.
    """
    name = str(dtype)
    for index in glob.glob(os.path.join(glob.escape(cache_dir()), "passes.gradient_pass-*.nbi")):
        try:
            with open(index, "rb") as f:
                version = pickle.load(f)
                stamp, overloads = pickle.loads(f.read())
        except Exception:
            continue
        if version == numba.__version__ and stamp == sources_fingerprint():
            # The loops backend's signature: `plain` left out (see passes.forward_pass).
            signatures = [str(key[0]) for key in overloads]
            if any(f"Array({name}," in s and "omitted(default=None)" in s for s in signatures):
                return True
    return False
