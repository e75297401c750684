"""Hypothesis profiles: "fast" (the default, derandomised, for every run) and "long".

Choose with ``LOOPBP_HYPOTHESIS=long pytest`` for a longer, random search, or "coverage"
for the run without JIT (docs/development.md, "Tests").
"""

import os

# The cuda backend's tests (tests/test_cuda.py) run on Numba's CUDA simulator, which numba
# reads from the environment when it is first imported: so here, before anything imports
# numba. It changes nothing for the CPU kernels. NUMBA_ENABLE_CUDASIM=0 runs them on a GPU.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
# Every call runs the fast kernels, compiled at the first call (or by the warm-up below) and
# inherited by the tests' subprocesses: results must not depend on when a background
# compile ends. tests/test_warming.py checks the background mode on its own.
os.environ["LOOPBP_COMPILE"] = "foreground"

import numba  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "fast",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
# The kernel-coverage run (NUMBA_DISABLE_JIT=1, pure Python): a few small examples.
settings.register_profile("coverage", max_examples=5, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("LOOPBP_HYPOTHESIS", "fast"))


#: Without JIT (NUMBA_DISABLE_JIT=1, the kernel-coverage run) every loop runs as Python,
#: about a thousand times slower. These tests only repeat, on bigger networks, lines that
#: smaller cases already run, so that run leaves them out.
HEAVY_WITHOUT_JIT = (
    "[small-",
    "-small]",
    "odd-sizes",
    "[64-128-128-10",
    "[13-37-29-7",
    "test_error_decreases_on_the_sine_example",
    "test_fit_one_thread_equals_n_threads",
    "test_a_step_allocates_no_numpy_arrays",
    "test_train_digits",
    "test_saturating_layers",
    # The README's examples train for thousands of steps and cross-validate a classifier.
    "test_readme_example",
    "test_docstring_examples[sklearn]",
)


def pytest_collection_modifyitems(config, items):
    if not numba.config.DISABLE_JIT:
        return
    kept, dropped = [], []
    for item in items:
        (dropped if any(h in item.nodeid for h in HEAVY_WITHOUT_JIT) else kept).append(item)
    items[:] = kept
    config.hook.pytest_deselected(items=dropped)


def pytest_sessionstart(session):
    """Under pytest-xdist, compile the kernel sets that most tests run before the workers start.

    Run by the controller alone, one process per dtype at once (``loopbp warm``), each
    compiling into the cache that the workers then load from. Without it, on an empty
    cache, every worker compiles the same kernel sets at about the same time, each the
    whole of them: the same work once per worker. With a warm cache it loads and exits.
    """
    config = session.config
    if hasattr(config, "workerinput") or not config.pluginmanager.has_plugin("dsession"):
        return  # an xdist worker, or a run without workers (-n 0, --collect-only)
    if numba.config.DISABLE_JIT:
        return
    import subprocess
    import sys

    warming = [
        subprocess.Popen(
            [sys.executable, "-m", "loopbp", "warm", "--dtype", dtype, "--kernels", "narrow,wide"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for dtype in ("float64", "float32")
    ]
    for process in warming:
        try:
            _, err = process.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        # A failure here shows again, with its test, when a worker compiles the same kernels.
        if process.returncode != 0:
            print(f"loopbp warm failed before the tests:\n{err[-2000:]}", file=sys.stderr)
