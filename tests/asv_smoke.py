"""Every benchmark of the asv suite with every parameter, once, in this one process.

asv's own ``run --quick`` starts a process for each of the suite's ~180 benchmark and
parameter combinations, and each of them loads the compiled kernels from the cache again:
over a minute on two cores for work that takes a few seconds. This runs the same
benchmarks through asv_runner's own discovery and benchmark objects (setup, the timed
call, teardown, ``setup_cache``), with the parameters that ``asv run --quick`` passes,
one after another in one process. ``tests/test_benchmarks.py`` runs it with
``LOOPBP_BENCH_SMOKE=1`` and checks that every benchmark gave a result or skipped itself
for an expected reason; a real ``asv run`` of a few benchmarks there keeps asv's side
covered.

Prints one line per benchmark and combination, `MARK` then a JSON object: the
benchmark's name, its parameters, and either its result (``repr``), the message it
skipped with, or the error it raised; the seconds it took and asv's timeout for it.

One process is not quite asv's fresh process per benchmark: Numba's thread count is set
back to its default before each benchmark here, as a new process would start with it, and
what ``benchmarks/common.py`` caches per process (the prepared calls) is shared.
"""

import contextlib
import io
import itertools
import json
import math
import os
import sys
import time
import traceback

import numba
from asv_runner.benchmarks.mark import SkipNotImplemented
from asv_runner.discovery import disc_benchmarks, get_benchmark_from_name

#: What ``asv run --quick`` adds to every benchmark's attributes (asv/runner.py).
QUICK = {"number": 1, "repeat": 1, "warmup_time": 0, "rounds": 1}
#: asv's timeout of a benchmark that sets none, in seconds.
DEFAULT_TIMEOUT = 60.0
#: What starts each line of results, so that nothing else printed is taken for one.
MARK = "asv-smoke: "


def run_one(root, name, index, caches):
    """(result, skipped, error) of benchmark `name` with parameter combination `index`."""
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    benchmark = get_benchmark_from_name(root, name if index is None else f"{name}-{index}", QUICK)
    if benchmark.setup_cache_key is not None:
        if benchmark.setup_cache_key not in caches:
            caches[benchmark.setup_cache_key] = benchmark.do_setup_cache()
        benchmark.set_cache(caches[benchmark.setup_cache_key])
    else:
        benchmark.set_cache(None)
    printed = io.StringIO()
    result = skipped = error = None
    with contextlib.redirect_stdout(printed):
        try:
            if benchmark.do_setup():
                result = math.nan
            else:
                try:
                    result = benchmark.do_run()
                except SkipNotImplemented as e:
                    result, skipped = math.nan, repr(e)
            benchmark.do_teardown()
        except Exception:
            error = traceback.format_exc()
    for line in printed.getvalue().splitlines():
        if line.startswith("asv: skipped: "):
            skipped = line[len("asv: skipped: ") :].strip()
    return result, skipped, error, benchmark.timeout or DEFAULT_TIMEOUT


def main(root):
    root = os.path.abspath(root)
    sys.path.insert(0, os.path.dirname(root))  # the suite imports as a package, as under asv
    caches = {}
    for benchmark in sorted(disc_benchmarks(root), key=lambda b: b.name):
        # (index, parameters) of each combination, in asv's order; (None, None) without any.
        combinations = list(enumerate(itertools.product(*benchmark.params))) if benchmark.params else []
        for index, params in combinations or [(None, None)]:
            start = time.perf_counter()
            result, skipped, error, timeout = run_one(root, benchmark.name, index, caches)
            seconds = time.perf_counter() - start
            line = {"name": benchmark.name, "params": repr(params), "result": repr(result)}
            line["seconds"], line["timeout"] = seconds, timeout
            if skipped is not None:
                line["skipped"] = skipped
            if error is not None:
                line["error"] = error
            print(MARK + json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
