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
4. else, where that cannot be written, a private ``loopbp-cache-<uid>`` folder in the
   temporary directory (private because cached kernels are pickles).

Inside it each installed copy of loopbp has a folder of its own, named after the hash of
its path, so two virtual environments never share files. ``loopbp cache`` prints the
directory and ``loopbp cache --clear`` deletes it; deleting it by hand is just as safe.
``NUMBA_CACHE_LOCATOR_CLASSES``, when set, replaces Numba's list of locators, this one too.

loopbp 0.1.0 kept its cache files beside its sources, in ``loopbp/__pycache__``; `install`,
run at ``import loopbp``, deletes them (the ``*.nbi`` and ``*.nbc`` files and the
``loopbp-numba-sources.txt`` stamp) so that an upgraded install leaves nothing behind.
``LOOPBP_KEEP_LEGACY_CACHE`` set to ``1`` (or any non-empty value but ``0``) keeps them:
for a read-only or shared install, or to keep what another tool put there.

Staleness is judged for the package as a whole. Numba judges a cached kernel by its own
source file alone, but the drivers in ``cpu/layer_loop.py`` call kernels in ``tiled_kernels.py``
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

try:
    import fcntl
except ImportError:  # Windows: no lock (the race stays, as in Numba)
    fcntl = None

import numba
from numba.core import caching, config

#: The folder of loopbp's sources: the locator takes the kernels defined there, and the
#: digest of its files stamps them.
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _user_cache_root():
    try:
        # The appdirs that Numba ships and uses for its own user-wide cache.
        from numba.misc.appdirs import AppDirs

        return AppDirs(appname="loopbp", appauthor=False).user_cache_dir
    except Exception:  # pragma: no cover - an older or changed Numba
        return os.path.join(os.path.expanduser("~"), ".cache", "loopbp")


def cache_root():
    """The directory under which loopbp's compiled kernels are kept, as configured.

    Returns
    -------
    str
        ``LOOPBP_CACHE_DIR``, else ``NUMBA_CACHE_DIR`` (as Numba read it at import),
        else the per-user cache directory (see the module docstring).
    """
    if os.environ.get("LOOPBP_CACHE_DIR"):
        return os.path.abspath(os.environ["LOOPBP_CACHE_DIR"])
    # Numba read NUMBA_CACHE_DIR when it was imported; follow what Numba itself does.
    if config.CACHE_DIR:
        return os.path.abspath(config.CACHE_DIR)
    return _user_cache_root()


def _fallback_root():
    # One folder per user: cached kernels are pickles, so a folder that another user can
    # write to would let them plant code (checked in usable_folder).
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return os.path.join(tempfile.gettempdir(), f"loopbp-cache-{uid}")


def usable_folder(folder, private=False):
    """Whether `folder` exists or can be made, and is writable (and ours alone, if `private`)."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        if private and hasattr(os, "getuid"):
            top = os.path.dirname(folder)
            info = os.stat(top)
            if info.st_uid != os.getuid() or info.st_mode & 0o022:
                return False
        return True
    except OSError:
        return False


def _folders():
    # (folder, must be private) in order of preference; the subfolder is named after the
    # path of this copy of loopbp, as Numba names its own.
    subpath = caching._CacheLocator.get_suitable_cache_subpath(__file__)
    return [(os.path.join(cache_root(), subpath), False), (os.path.join(_fallback_root(), subpath), True)]


def _writable_folder():
    """The first of `_folders` that can be written, or None."""
    for folder, private in _folders():
        if usable_folder(folder, private):
            return folder
    return None


def cache_dir():
    """The folder where this copy of loopbp's kernels are cached.

    Returns
    -------
    str
        A folder inside `cache_root` named after this copy's path, or, where that cannot
        be written, the same inside a private folder of the temporary directory. It is
        created if need be.
    """
    return _writable_folder() or _folders()[0][0]


@functools.cache
def sources_fingerprint():
    """A SHA-256 digest of the path and contents of every .py file of loopbp, subpackages included."""
    digest = hashlib.sha256()
    for name in _source_files():
        with open(os.path.join(PACKAGE_DIR, name), "rb") as f:
            digest.update(name.replace(os.sep, "/").encode() + b"\0" + f.read() + b"\0")
    return digest.hexdigest()


def _source_files():
    """The .py files of the package, as paths relative to it, in a fixed order."""
    found = []
    for folder, subfolders, files in os.walk(PACKAGE_DIR):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        relative = os.path.relpath(folder, PACKAGE_DIR)
        found += [os.path.normpath(os.path.join(relative, f)) for f in files if f.endswith(".py")]
    return sorted(found)


def _inside_package(py_file):
    path = os.path.abspath(py_file)
    return os.path.commonpath([path, PACKAGE_DIR]) == PACKAGE_DIR


class LoopbpCacheLocator(caching._CacheLocator):
    """Numba cache locator for loopbp's own kernels: a per-user directory, a package-wide stamp."""

    def __init__(self, py_func, folder):
        self._lineno = py_func.__code__.co_firstlineno
        # Numba names a kernel's files after its module's file name and its line: the
        # subpackage joins them, so that cpu/kernels.py and a kernels.py elsewhere differ.
        where = os.path.relpath(os.path.dirname(os.path.abspath(py_func.__code__.co_filename)), PACKAGE_DIR)
        self._subpackage = "" if where == os.curdir else where.replace(os.sep, "_") + "_"
        # Numba names the file in its warning when a function cannot be cached.
        self._py_file = py_func.__code__.co_filename
        self._cache_path = folder

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        return sources_fingerprint()

    def get_disambiguator(self):
        return f"{self._subpackage}{self._lineno}"

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _inside_package(py_file):
            return None  # not loopbp's: Numba's own locators decide
        global _kernel_folder
        folder = _writable_folder()
        if folder is None:
            # Nowhere to write: Numba's own locators decide (none of them can write either,
            # in all likelihood, and the kernels are compiled in each process).
            return None
        _kernel_folder = folder
        _kernel_folders.add(folder)
        return cls(py_func, folder)


#: The folder the locator gave loopbp's kernels when they were defined: see `kernel_folder`.
_kernel_folder = None
#: Every folder it gave them, whose index files are written under `WRITE_LOCK`.
_kernel_folders = set()

#: The file in a kernel folder that a process locks while it writes an index there.
WRITE_LOCK = "numba-index.lock"


def _locked(save):
    """Numba's ``IndexDataCacheFile.save``, under an exclusive lock in loopbp's folders.

    Numba saves a new signature by reading the index, taking the first data file name not
    in it, and writing the index, then the data. Two processes saving two signatures of one
    function at once (the float64 and float32 kernels, say) can take the same name: the
    index then sends one signature to the other's code, and every later load of it fails
    to type until the cache is cleared. Under the lock (``fcntl.flock``, where there is
    one) the saves of loopbp's kernels take turns.
    """

    @functools.wraps(save)
    def locked_save(self, key, data):
        folder = getattr(self, "_cache_path", None)
        if fcntl is None or folder not in _kernel_folders:
            return save(self, key, data)
        with open(os.path.join(folder, WRITE_LOCK), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return save(self, key, data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    locked_save.loopbp_locked = True
    return locked_save


def kernel_folder():
    """The folder where this process's loopbp kernels are cached, or None if nowhere.

    The locator chose it when the kernels were defined, at ``import loopbp``; `cache_dir`
    says where they would go now, which differs if ``LOOPBP_CACHE_DIR`` (say) has changed
    since.
    """
    return _kernel_folder


def _impl_classes():
    # CacheImpl is named _CacheImpl before Numba 0.61 or so; both hold the locator list.
    for name in ("CacheImpl", "_CacheImpl"):
        impl = getattr(caching, name, None)
        if impl is not None and isinstance(getattr(impl, "_locator_classes", None), list):
            yield impl


#: What loopbp 0.1.0 left beside its sources: Numba's cache files and a stamp.
_LEGACY = ("*.nbi", "*.nbc", "loopbp-numba-sources.txt")


def _keep_legacy_cache():
    """Whether ``LOOPBP_KEEP_LEGACY_CACHE`` asks to keep 0.1.0's cache files (set, not "0")."""
    return os.environ.get("LOOPBP_KEEP_LEGACY_CACHE", "") not in ("", "0")


def _remove_legacy_cache():
    # Files that pip does not record: after an uninstall they kept the folder, which then
    # shadowed the package as an empty namespace package.
    if _keep_legacy_cache():
        return
    folder = os.path.join(PACKAGE_DIR, "__pycache__")
    for pattern in _LEGACY:
        for path in glob.glob(os.path.join(glob.escape(folder), pattern)):
            try:
                os.remove(path)
            except OSError:  # read-only, or another process got there first
                pass


def install():
    """Put `LoopbpCacheLocator` first in Numba's list of cache locators (once).

    Must run before loopbp's kernels are decorated: Numba picks a kernel's locator when
    its ``@njit(cache=True)`` runs. Also deletes the cache files that loopbp 0.1.0 kept
    beside its sources, so that an upgraded install leaves nothing behind either, unless
    the environment variable ``LOOPBP_KEEP_LEGACY_CACHE`` is set to ``1`` (or any
    non-empty value but ``0``).
    """
    _remove_legacy_cache()
    for impl in _impl_classes():
        if LoopbpCacheLocator not in impl._locator_classes:
            impl._locator_classes.insert(0, LoopbpCacheLocator)
    save = getattr(caching.IndexDataCacheFile, "save", None)
    if save is not None and not getattr(save, "loopbp_locked", False):
        caching.IndexDataCacheFile.save = _locked(save)


def clear(folder=None):
    """Delete this copy of loopbp's cached kernels (or those in `folder`).

    Parameters
    ----------
    folder : str, optional
        One of `cache_folders`; `cache_dir` by default.

    Returns
    -------
    str or None
        The folder that was removed, or None when it held no cached kernel.

    Raises
    ------
    OSError
        When the folder cannot be removed.
    """
    folder = cache_dir() if folder is None else folder
    if not os.path.isdir(folder) or not os.listdir(folder):
        return None
    shutil.rmtree(folder)
    return folder


def cache_folders():
    """Every folder of cached kernels under `cache_root` and the temporary fallback.

    One per copy of loopbp that has compiled here (each virtual environment or checkout
    has its own, named after its path), this copy's included if it exists.

    Returns
    -------
    list of str
    """
    found = []
    for root in (cache_root(), _fallback_root()):
        try:
            names = sorted(os.listdir(root))
        except OSError:
            continue
        for name in names:
            path = os.path.join(root, name)
            # Numba names each copy's folder after the package's folder, "loopbp_<hash>";
            # other projects' caches may share NUMBA_CACHE_DIR and are left alone.
            if name.startswith("loopbp") and os.path.isdir(path) and path not in found:
                found.append(path)
    return found


def cache_size(folder=None):
    """The files under `folder` (default: `cache_dir`) and their bytes.

    Returns
    -------
    files, size : int, int
    """
    folder = cache_dir() if folder is None else folder
    files = total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.stat(os.path.join(parent, name)).st_size
                files += 1
            except OSError:
                pass
    return files, total


def cached_signatures(function, folder=None):
    """The argument types of every signature of `function` that the cache holds from these sources.

    Reads the function's index files the way Numba does; an index that cannot be read, or
    that another Numba or other sources wrote, counts as empty.

    Parameters
    ----------
    function : str
        ``module.function`` inside loopbp (the module's file name, without its package),
        e.g. ``"driver.run"``.
    folder : str or None
        The cache folder to look in; by default `cache_dir`.

    Returns
    -------
    list of tuple
        One tuple of Numba types per cached signature.
    """
    folder = cache_dir() if folder is None else folder
    found = []
    for index in glob.glob(os.path.join(glob.escape(folder), f"{glob.escape(function)}-*.nbi")):
        try:
            with open(index, "rb") as f:
                version = pickle.load(f)
                stamp, overloads = pickle.loads(f.read())
        except Exception:
            continue
        if version == numba.__version__ and stamp == sources_fingerprint():
            found += [key[0] for key in overloads]
    return found
