"""Where the first call's compile time goes: per function and, for the entry points, per stage.

Usage::

    python benchmarks/compile_profile.py 64-30-10                 # float64, fresh cache
    python benchmarks/compile_profile.py 784-256-128-10 --dtype float32 --top 15
    python benchmarks/compile_profile.py 13-37-29-7 --other-dtype # then the other dtype
    python benchmarks/compile_profile.py 64-30-10 --background    # loopbp's default first use
    python benchmarks/compile_profile.py 13-37-29-7 --libraries   # and LLVM's time per library

Runs in a fresh, empty kernel cache (``LOOPBP_CACHE_DIR`` set to a new temporary folder,
removed at the end) unless ``--warm`` is given, and prints:

- the seconds of the first `Network.gradient`, then of the first `fit`, `forward` and
  (``--other-dtype``) the first gradient in the other dtype, each after the one above;
- every compiled function's own seconds (exclusive of the functions it compiled in turn)
  and, in brackets, inclusive; Numba's ``numba:compile`` events give both;
- for each entry point that Python called (a function compiled with no caller above it),
  Numba's stages: type inference (which includes compiling every callee), IR inlining,
  lowering, and with ``--llvm`` LLVM's module optimisation and code generation inside
  lowering (``NUMBA_LLVM_PASS_TIMINGS=1``, which slows the compile itself: leave it out
  for the first lines' times);
- with ``--libraries``, LLVM's time per library: each compiled function, parallel region
  and wrapper is a library of its own, whose module holds a copy of every library it
  calls, optimised again and compiled to machine code again there; so a kernel's code
  goes through LLVM once per level of calls above it.

By default it profiles the fast kernels' compile (``LOOPBP_COMPILE=foreground``). With
``--background`` it profiles loopbp's default first use: the calls run the serial loops
(``loopbp.cpu.serial_driver``) while a background process compiles the fast kernels, and the
last line says when those were ready, counted from the first gradient's start.

The numbers are one run's, on a shared machine: compare runs made one after the other.
"""

import argparse
import collections
import os
import re
import shutil
import sys
import tempfile
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", help="n^0-n^1-...-n^L, e.g. 64-30-10")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--m", type=int, default=100, help="samples (default 100)")
    parser.add_argument("--top", type=int, default=12, help="functions to list (default 12)")
    parser.add_argument("--other-dtype", action="store_true", help="then a gradient in the other dtype")
    parser.add_argument("--warm", action="store_true", help="use the existing cache, do not empty it")
    parser.add_argument("--llvm", action="store_true", help="also LLVM's stages (slows the compile)")
    parser.add_argument(
        "--libraries", action="store_true", help="also LLVM's optimisation and machine code per library"
    )
    parser.add_argument(
        "--background",
        action="store_true",
        help="loopbp's default first use: the serial loops here while a background process compiles "
        "the fast kernels (by default this profiles the fast kernels' compile, LOOPBP_COMPILE=foreground)",
    )
    args = parser.parse_args(argv)

    folder = None
    if not args.warm:
        folder = tempfile.mkdtemp(prefix="loopbp-compile-profile-")
        os.environ["LOOPBP_CACHE_DIR"] = folder
    if args.llvm:
        os.environ["NUMBA_LLVM_PASS_TIMINGS"] = "1"
    os.environ["LOOPBP_COMPILE"] = "background" if args.background else "foreground"
    try:
        run(args)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def run(args):
    start = time.perf_counter()
    import numpy as np
    from numba.core import event

    import loopbp

    imported = time.perf_counter() - start
    libraries = _time_libraries() if args.libraries else None
    own, total, count = collections.Counter(), collections.Counter(), collections.Counter()
    stack, entries = [], []

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append([time.perf_counter(), 0.0])

        def on_end(self, ev):
            began, children = stack.pop()
            seconds = time.perf_counter() - began
            dispatcher = ev.data["dispatcher"]
            name = f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"
            own[name] += seconds - children
            total[name] += seconds
            count[name] += 1
            if stack:
                stack[-1][1] += seconds
            else:
                entries.append((name, dispatcher, ev.data["args"]))

    event.register("numba:compile", Listener())
    sizes = tuple(int(n) for n in args.sizes.split("-"))
    activations = ("sigmoid",) * (len(sizes) - 2) + ("identity",)
    net = loopbp.Network(sizes, activations, dtype=args.dtype, seed=0)
    X = np.ones((sizes[0], args.m), args.dtype)
    Y = np.zeros((sizes[-1], args.m), args.dtype)

    def timed(what, call):
        began = time.perf_counter()
        call()
        print(f"{what:<34} {time.perf_counter() - began:7.2f} s", flush=True)

    where = "the cache as it is" if args.warm else "an empty cache"
    mode = "the serial loops, fast kernels in the background" if args.background else "the fast kernels"
    print(f"loopbp compile profile: {args.sizes}, m = {args.m}, {args.dtype}, {where}, {mode}")
    print(f"{'import loopbp':<34} {imported:7.2f} s")
    first = time.perf_counter()
    timed("first Network.gradient", lambda: net.gradient(X, Y))
    fit = dict(learning_rate=0.01, epochs=2, progress=False)
    timed("then the first fit (2 epochs)", lambda: net.fit(X, Y, **fit))
    timed("then the first forward", lambda: net.forward(X))
    if args.other_dtype:
        other = "float32" if args.dtype == "float64" else "float64"
        net2 = loopbp.Network(sizes, activations, dtype=other, seed=0)
        timed(f"then the first gradient in {other}", lambda: net2.gradient(X.astype(other), Y.astype(other)))

    if args.background:
        from loopbp.cpu import warming

        warming.wait_for_background_compiles()
        print(f"{'the fast kernels ready after':<34} {time.perf_counter() - first:7.2f} s")

    print(f"\ncompiled functions, own seconds (inclusive), top {args.top} of {len(own)}")
    print(f"  {sum(own.values()):6.2f} s in all")
    for name, seconds in own.most_common(args.top):
        times = f" x{count[name]}" if count[name] > 1 else ""
        print(f"  {seconds:6.2f} s ({total[name]:6.2f} s)  {name}{times}")

    print("\nentry points, by stage (type inference includes compiling every callee)")
    for name, dispatcher, types in entries:
        for sig in dispatcher.signatures:
            if tuple(sig) != tuple(types):
                continue
            metadata = dispatcher.get_metadata(sig)
            stages = {}
            for passes in metadata.get("pipeline_times", {}).values():
                for key, t in passes.items():
                    stages[key.split("_", 1)[1]] = t.init + t.run + t.finalize
            llvm = {}
            for record in metadata.get("llvm_pass_timings") or []:
                if not record.name.startswith("Function passes"):
                    llvm[record.name] = record.timings.get_total_time()
            shown = sorted(stages.items(), key=lambda kv: -kv[1])[:4]
            text = ", ".join(f"{stage} {t:.2f} s" for stage, t in shown)
            print(f"  {name}: {text}")
            if llvm:
                print("    LLVM: " + ", ".join(f"{stage} {t:.2f} s" for stage, t in llvm.items()))
    if libraries is not None:
        _print_libraries(libraries, args.top)


#: The steps of Numba's CPU code library that run LLVM: function passes on each module
#: added, module passes on the final module (with every linked library in it), and the
#: machine code of that module.
_LLVM_STEPS = {
    "_optimize_functions": "function passes",
    "_optimize_final_module": "module passes",
    "_finalize_final_module": "machine code",
}


def _time_libraries():
    """Time the LLVM steps of every library compiled from now on: {(library, step): seconds}.

    Wraps methods of Numba's ``CPUCodeLibrary``, which is internal to Numba: with a Numba
    that lacks them, says so and times nothing.
    """
    from numba.core import codegen

    library_class = codegen.CPUCodeLibrary
    seconds = collections.Counter()
    if not all(hasattr(library_class, method) for method in _LLVM_STEPS):
        print("(--libraries: this Numba's CPUCodeLibrary has other methods; no LLVM times per library)")
        return None

    def timing(method, step):
        def timed(self, *args, **kwargs):
            began = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                seconds[self.name, step] += time.perf_counter() - began

        return timed

    for method, step in _LLVM_STEPS.items():
        setattr(library_class, method, timing(getattr(library_class, method), step))
    return seconds


def _print_libraries(seconds, top):
    by_step, by_library, by_part = collections.Counter(), collections.Counter(), collections.Counter()
    libraries = set()
    for (name, step), t in seconds.items():
        # Parallel regions' libraries are named after the address of an object: leave it out.
        library = re.sub(r"(_| object at )0x[0-9a-f]+", "", name).strip("<>")
        by_step[step] += t
        by_library[library] += t
        by_part[library, step] += t
        libraries.add(name)
    steps = ", ".join(f"{step} {by_step[step]:.2f} s" for step in _LLVM_STEPS.values())
    total = sum(by_step.values())
    print(f"\nLLVM per library: {total:.2f} s in all over {len(libraries)} libraries ({steps})")
    for library, t in by_library.most_common(top):
        parts = ", ".join(f"{by_part[library, step]:.2f}" for step in _LLVM_STEPS.values())
        print(f"  {t:6.2f} s ({parts})  {library[:90]}")


if __name__ == "__main__":
    sys.exit(main())
