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
