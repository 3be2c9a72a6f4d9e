"""Shared helpers of the p2mnote Python tests (not a test module itself).

Environment:
  P2MNOTE_LIBRARY    the libp2mnote.so to test (else the package's own lookup)
  P2M_GENDUMP        p2m-gendump (default: .build/debug/p2m-gendump of this checkout)
  P2M_ANALYZE        p2m-analyze (default: .build/debug/p2m-analyze)
  P2M_EXTRACT        p2m-extract (default: .build/debug/p2m-extract)
  P2M_EMIT, P2M_INJECT  p2m-emit / p2m-inject (default: .build/debug/)
  P2M_REAL_DUMP_DIR  the real Xen dumps (default: /var/cache/p2mnote/real-dumps)

Every skip is loud: a line starting "SKIPPED:" on stderr, then unittest's skip.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest
from typing import Any, Dict, List, Optional, Sequence, Tuple

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(TESTS_DIR)
REPO = os.path.dirname(PYTHON_DIR)

# The tests import the package from this checkout, installed or not.
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

import p2mnote  # noqa: E402


def _tool(env: str, name: str) -> str:
    return os.environ.get(env) or os.path.join(REPO, ".build", "debug", name)


GENDUMP = _tool("P2M_GENDUMP", "p2m-gendump")
ANALYZE = _tool("P2M_ANALYZE", "p2m-analyze")
EXTRACT = _tool("P2M_EXTRACT", "p2m-extract")
EMIT = _tool("P2M_EMIT", "p2m-emit")
INJECT = _tool("P2M_INJECT", "p2m-inject")
REAL_DIR = os.environ.get("P2M_REAL_DUMP_DIR") or "/var/cache/p2mnote/real-dumps"

UINT64_MAX = (1 << 64) - 1
IDENTITY_BIT = 1 << 62


def skip_loudly(reason: str) -> None:
    # A line of its own, even after unittest's progress dots.
    print(f"\nSKIPPED: {reason}", file=sys.stderr, flush=True)
    raise unittest.SkipTest(reason)


def require_library() -> None:
    try:
        p2mnote._lib.lib()
    except p2mnote.LibraryNotFoundError as e:
        skip_loudly(f"libp2mnote.so is not loadable: {e}")


def require_executable(path: str, what: str) -> None:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        skip_loudly(f"{what} not found at {path}")


def require_drgn() -> None:
    try:
        import drgn  # noqa: F401
    except ImportError as e:
        skip_loudly(f"drgn is not importable ({e}); pip install drgn")
    if not hasattr(drgn.Program, "set_linux_kernel_custom"):
        skip_loudly("drgn lacks Program.set_linux_kernel_custom (need drgn >= 0.3.0)")


def require_real(*names: str) -> str:
    for n in names:
        p = os.path.join(REAL_DIR, n)
        if not os.path.exists(p):
            skip_loudly(f"real dump file {p} is missing (set P2M_REAL_DUMP_DIR)")
    return REAL_DIR


# ------------------------------------------------------------------------------------------
# Ground truth recorded live by Tools/real-dump (each expected value comes from the recording of
# the dump under test, never from a literal: every new machine makes its dumps anew)

KTHREADD = 2
PF_WQ_WORKER = 0x00000020
PF_KTHREAD = 0x00200000


def proc_comm(task) -> str:
    """What /proc/PID/comm shows for a drgn task: task->comm, a kthread's full name (Linux >=
    5.17), and a workqueue worker's "+desc"/"-desc" (wq_worker_comm)."""
    from drgn import cast

    comm = task.comm.string_().decode()
    flags = task.flags.value_()
    if flags & PF_WQ_WORKER:
        worker = cast("struct worker *", cast("struct kthread *", task.worker_private).data)
        desc = worker.desc.string_().decode()
        if desc:
            return comm + ("+" if worker.current_work.value_() else "-") + desc
        return comm
    if flags & PF_KTHREAD:
        kt = cast("struct kthread *", task.worker_private)
        if kt.value_() and kt.full_name.value_():
            return kt.full_name.string_().decode()
    return comm


def task_row(task) -> Tuple[int, str, bool]:
    """(parent's tgid, /proc's comm, is a workqueue worker): what compare_tasks takes."""
    return (task.real_parent.tgid.value_(), proc_comm(task), bool(task.flags.value_() & PF_WQ_WORKER))


def leaders(prog) -> list:
    """The thread-group leaders of a drgn program: the processes /proc lists."""
    from drgn.helpers.linux.pid import for_each_task

    return [t for t in for_each_task(prog) if t.pid.value_() == t.tgid.value_()]


def dump_tasks(prog) -> Dict[int, Tuple[int, str, bool]]:
    """The processes of a drgn program as /proc lists them: pid -> task_row."""
    return {t.pid.value_(): task_row(t) for t in leaders(prog)}


def recorded_tasks(truth_dir: str) -> Dict[int, Tuple[int, str]]:
    """tasks.txt: pid -> (ppid, comm), the processes /proc listed as the last step before the
    dump. Refuses a record Tools/real-dump did not check complete (records.txt), so that a
    failed recording fails here with that reason and never as a difference in the dump."""
    records = os.path.join(truth_dir, "records.txt")
    if not os.path.exists(records):
        raise AssertionError(f"{records} is missing: the recording was not checked complete; rerun Tools/real-dump/make")
    out: Dict[int, Tuple[int, str]] = {}
    with open(os.path.join(truth_dir, "tasks.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            pid, ppid, comm = line.rstrip("\n").split(" ", 2)
            out[int(pid)] = (int(ppid), comm)
    if not out:
        raise AssertionError(f"{truth_dir}/tasks.txt is empty: the recording failed; rerun Tools/real-dump/make")
    return out


def recorded_release(truth_dir: str) -> str:
    with open(os.path.join(truth_dir, "uname.txt")) as f:
        return f.read().split()[2]


def recorded_module_count(truth_dir: str) -> int:
    with open(os.path.join(truth_dir, "modules.txt")) as f:
        return sum(1 for l in f if l.strip())


def is_workqueue_worker(comm: str, ppid: int) -> bool:
    return comm.startswith("kworker/") and ppid == KTHREADD


def compare_tasks(recorded: Dict[int, Tuple[int, str]], dump: Dict[int, Tuple[int, str, bool]]) -> Tuple[List[str], List[str]]:
    """The one rule for tasks recorded live against the dump's (pid -> (ppid, comm, is a
    workqueue worker by PF_WQ_WORKER)): a workqueue worker, a kworker/ thread whose parent is
    kthreadd, may have been created or retired between the recording and the dump, or have
    changed its "-desc" suffix; every other task must match exactly (pid, parent, comm).
    Returns (errors, the differences the rule allowed)."""
    errors: List[str] = []
    allowed: List[str] = []
    if recorded.get(KTHREADD, (None, ""))[1] != "kthreadd":
        errors.append(f"the record has no kthreadd at pid {KTHREADD}: the rule cannot apply")
    for pid in sorted(set(recorded) | set(dump)):
        r, d = recorded.get(pid), dump.get(pid)
        if r is not None and d is not None:
            if (r[0], r[1]) == (d[0], d[1]):
                continue
            if is_workqueue_worker(r[1], r[0]) and is_workqueue_worker(d[1], d[0]) and d[2]:
                allowed.append(f"{pid}: {r[1]} then {d[1]}")
                continue
            errors.append(f"{pid}: recorded (ppid {r[0]}) {r[1]!r}, in the dump (ppid {d[0]}) {d[1]!r}")
        elif d is not None:
            if is_workqueue_worker(d[1], d[0]) and d[2]:
                allowed.append(f"{pid}: {d[1]} created after the recording")
            else:
                errors.append(f"{pid} (ppid {d[0]}) {d[1]!r}: in the dump, not recorded")
        else:
            if is_workqueue_worker(r[1], r[0]):
                allowed.append(f"{pid}: {r[1]} retired after the recording")
            else:
                errors.append(f"{pid} (ppid {r[0]}) {r[1]!r}: recorded, not in the dump")
    return errors, allowed


def recorded_dmesg_tail(truth_dir: str) -> List[str]:
    with open(os.path.join(truth_dir, "dmesg-tail.txt")) as f:
        tail = [l.rstrip("\n") for l in f if l.strip()]
    if len(tail) <= 10:
        raise AssertionError(f"{truth_dir}/dmesg-tail.txt has {len(tail)} lines: the recording failed; rerun Tools/real-dump/make")
    return tail


# ------------------------------------------------------------------------------------------
# Generated dumps, made once per process in one temporary directory


_tmp_lock = threading.Lock()
_tmp_dir: Optional[str] = None
_made: Dict[Tuple[str, ...], "Generated"] = {}


def tmp_dir() -> str:
    global _tmp_dir
    with _tmp_lock:
        if _tmp_dir is None:
            _tmp_dir = tempfile.mkdtemp(prefix="p2mnote-pytest-")
            atexit.register(shutil.rmtree, _tmp_dir, True)
        return _tmp_dir


class Generated:
    """A dump written by p2m-gendump: .path, .system_map, .manifest (the JSON)."""

    def __init__(self, path: str):
        self.path = path
        self.system_map = path + ".System.map"
        with open(path + ".manifest.json") as f:
            self.manifest: Dict[str, Any] = json.load(f)

    # The p2m the manifest describes (independent of the library).
    def expected_raw(self, pfn: int) -> int:
        for r in self.manifest["p2m"]:
            start, count = r["start"], r["count"]
            if start <= pfn < start + count:
                off = pfn - start
                kind = r["kind"]
                if kind == "ascending":
                    return r["first"] + off
                if kind == "descending":
                    return r["first"] - off
                if kind == "identity":
                    return IDENTITY_BIT | pfn
                if kind == "invalid":
                    return UINT64_MAX
                if kind == "literal":
                    return r["values"][off]
                raise AssertionError(f"unknown run kind {kind!r} in {self.path}.manifest.json")
        return UINT64_MAX  # pfns no run lists are missing

    def expected_range(self, first: int, count: int) -> List[int]:
        out = [UINT64_MAX] * count
        end = first + count
        for r in self.manifest["p2m"]:
            s, n, kind = r["start"], r["count"], r["kind"]
            lo, hi = max(s, first), min(s + n, end)
            if lo >= hi:
                continue
            for pfn in range(lo, hi):
                off = pfn - s
                if kind == "ascending":
                    v = r["first"] + off
                elif kind == "descending":
                    v = r["first"] - off
                elif kind == "identity":
                    v = IDENTITY_BIT | pfn
                elif kind == "invalid":
                    v = UINT64_MAX
                elif kind == "literal":
                    v = r["values"][off]
                else:
                    raise AssertionError(f"unknown run kind {kind!r}")
                out[pfn - first] = v
        return out

    def ram_end(self) -> int:
        """One past the last pfn any non-invalid run covers."""
        return max(r["start"] + r["count"] for r in self.manifest["p2m"] if r["kind"] != "invalid")

    def symbols(self) -> Dict[str, int]:
        out = {}
        with open(self.system_map) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    out[parts[2]] = int(parts[0], 16)
        return out


def generate(kind: str = "dom0", *args: str) -> Generated:
    """p2m-gendump KIND ARGS -o TMP/...; cached by (kind, args)."""
    require_executable(GENDUMP, "p2m-gendump")
    key = (kind,) + tuple(args)
    with _tmp_lock:
        if key in _made:
            return _made[key]
    name = "-".join(a.strip("-").replace("/", "_") for a in key) or kind
    path = os.path.join(tmp_dir(), name + (".xcore" if kind == "xl" else ".vmcore"))
    r = subprocess.run(
        [GENDUMP, kind, *args, "-o", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if r.returncode != 0:
        raise AssertionError(f"p2m-gendump {' '.join(key)} failed: {r.stderr.strip()}")
    g = Generated(path)
    with _tmp_lock:
        _made[key] = g
    return g


def generate_with_note(*args: str) -> Generated:
    """A dom0 dump with a p2mnote note (p2m-emit, then p2m-inject in place)."""
    require_executable(EMIT, "p2m-emit")
    require_executable(INJECT, "p2m-inject")
    key = ("dom0-note",) + tuple(args)
    with _tmp_lock:
        if key in _made:
            return _made[key]
    g0 = generate("dom0", "--seed", "11", *args)
    path = os.path.join(tmp_dir(), "with-note.vmcore")
    subprocess.run(["cp", "--sparse=always", g0.path, path], check=True)
    for suffix in (".System.map", ".manifest.json"):
        shutil.copy(g0.path + suffix, path + suffix)
    note = path + ".p2mnote"
    for cmd in (
        [EMIT, path, "--system-map", path + ".System.map", "-o", note],
        [INJECT, path, "--note", note],
    ):
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    g = Generated(path)
    with _tmp_lock:
        _made[key] = g
    return g


# ------------------------------------------------------------------------------------------
# Running library calls in a child process (a crash there is a test failure, not a dead runner)


CHILD_PRELUDE = """\
import json, sys
sys.path.insert(0, {python_dir!r})
import p2mnote
ARGS = json.loads(sys.argv[1])
def _main():
{body}
try:
    _r = _main()
    print(json.dumps({{"ok": True, "result": _r}}, default=repr))
except p2mnote.P2MNoteError as e:
    print(json.dumps({{"ok": False, "type": type(e).__name__, "status": e.status,
                      "message": e.message, "done": getattr(e, "done", None),
                      "bases": [c.__name__ for c in type(e).__mro__]}}))
"""


class ChildResult:
    def __init__(self, proc: subprocess.CompletedProcess, code: str):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.code = code
        self.data: Optional[Dict[str, Any]] = None
        lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        if lines:
            self.data = json.loads(lines[-1])

    def describe(self) -> str:
        sig = ""
        if self.returncode is not None and self.returncode < 0:
            try:
                sig = f" (killed by {signal.Signals(-self.returncode).name})"
            except ValueError:
                sig = f" (killed by signal {-self.returncode})"
        return (
            f"child exit {self.returncode}{sig}\n--- code:\n{self.code}\n--- stdout:\n{self.stdout}"
            f"\n--- stderr:\n{self.stderr[-4000:]}"
        )


def run_child(body: str, args: Any = None, timeout: float = 120) -> ChildResult:
    """Run ``body`` (the statements of a function returning a JSON-able value; ARGS is the
    decoded ``args``) in a fresh interpreter. Raises AssertionError if the child dies by a
    signal, times out or exits non-zero."""
    code = CHILD_PRELUDE.format(python_dir=PYTHON_DIR, body=textwrap.indent(textwrap.dedent(body), "    "))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"child did not finish in {timeout} s (a hang in the library?)\n{code}") from e
    res = ChildResult(proc, code)
    if proc.returncode != 0 or res.data is None:
        raise AssertionError(res.describe())
    return res
