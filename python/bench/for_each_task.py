#!/usr/bin/env python3
"""Time drgn's for_each_task (reading each task's pid and comm) on a Xen PV dump through
p2mnote.drgn.program, against drgn on a native vmcore of the same kernel.

    python3 python/bench/for_each_task.py [--xen DUMP] [--native VMCORE] [--vmlinux V] [-n N]

Debug info is loaded before timing (loading is not counted). Each side runs once untimed to warm
caches (drgn's, p2mnote's page cache, the OS page cache), then N timed runs; the medians, their
ratio, the per-task ratio (the dumps need not hold the same number of tasks) and the first
(cold) run are printed, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the checkout's python/, installed or not

REAL = os.environ.get("P2M_REAL_DUMP_DIR") or "/var/cache/p2mnote/real-dumps"


def walk(prog) -> int:
    from drgn.helpers.linux.pid import for_each_task

    n = 0
    for t in list(for_each_task(prog)):
        t.pid.value_()
        t.comm.string_()
        n += 1
    return n


def measure(prog, runs: int, before=None):
    t = time.perf_counter()
    ntasks = walk(prog)
    cold = time.perf_counter() - t
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        t = time.perf_counter()
        walk(prog)
        times.append(time.perf_counter() - t)
    return ntasks, cold, statistics.median(times), times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xen", default=os.path.join(REAL, "dom0.vmcore"), help="the Xen PV dump (default: %(default)s)")
    ap.add_argument("--native", default=os.path.join(REAL, "native.vmcore"), help="a native vmcore of the same kernel (default: %(default)s)")
    ap.add_argument("--vmlinux", default=os.path.join(REAL, "vmlinux"), help="the kernel's debug vmlinux (default: %(default)s)")
    ap.add_argument("--native-vmlinux", help="vmlinux for the native vmcore (default: --vmlinux)")
    ap.add_argument("--clear-page-cache", action="store_true",
                    help="empty p2mnote's page cache before each Xen run (every page read through the library each time)")
    ap.add_argument("-n", "--runs", type=int, default=50, help="timed runs per side (default: %(default)s)")
    args = ap.parse_args()

    import drgn
    import p2mnote.drgn

    t = time.perf_counter()
    xprog = p2mnote.drgn.program(args.xen, vmlinux=args.vmlinux)
    xload = time.perf_counter() - t
    kv = xprog.config["p2mnote.kvirt_cache"]
    xn, xcold, xmed, _ = measure(xprog, args.runs, kv.clear if args.clear_page_cache else None)
    print(f"xen    {args.xen}: {xn} tasks; median {xmed * 1e3:.3f} ms over {args.runs} runs "
          f"(cold {xcold * 1e3:.3f} ms; setup+debug info {xload:.2f} s; page cache {kv.misses} pages fetched)")

    out = {
        "bench": "for_each_task",
        "runs": args.runs,
        "clear_page_cache": args.clear_page_cache,
        "xen": {"dump": args.xen, "tasks": xn, "median_s": xmed, "cold_s": xcold, "setup_s": xload,
                "pages_fetched": kv.misses, "library_calls": kv.library_calls},
    }
    if os.path.exists(args.native):
        t = time.perf_counter()
        nprog = drgn.Program()
        nprog.set_core_dump(args.native)
        nprog.load_debug_info([args.native_vmlinux or args.vmlinux])
        nload = time.perf_counter() - t
        nn, ncold, nmed, _ = measure(nprog, args.runs)
        print(f"native {args.native}: {nn} tasks; median {nmed * 1e3:.3f} ms over {args.runs} runs "
              f"(cold {ncold * 1e3:.3f} ms; setup+debug info {nload:.2f} s)")
        ratio = xmed / nmed
        per_task = (xmed / xn) / (nmed / nn)
        print(f"ratio xen/native: {ratio:.2f} (per task {per_task:.2f}; cold {xcold / ncold:.2f})")
        out["native"] = {"dump": args.native, "tasks": nn, "median_s": nmed, "cold_s": ncold, "setup_s": nload}
        out["ratio"] = ratio
        out["ratio_per_task"] = per_task
        out["ratio_cold"] = xcold / ncold
    else:
        print(f"native {args.native}: missing; no ratio (pass --native)", file=sys.stderr)
        out["native"] = None
        out["ratio"] = None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
