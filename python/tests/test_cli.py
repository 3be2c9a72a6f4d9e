"""python3 -m p2mnote: help, info, drgn -s/-e, and one-line errors (never a traceback for a
dump problem); and where the library is looked for."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unittest

import support

import p2mnote


def run(*args: str, env: dict = None, stdin: str = None, timeout: float = 300) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e["PYTHONPATH"] = support.PYTHON_DIR + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    r = subprocess.run(
        [sys.executable, "-m", "p2mnote", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        input=stdin,
        env=e,
        timeout=timeout,
    )
    assert r.returncode >= 0, f"killed by signal {-r.returncode}: {r.stderr}"
    return r


class CLI(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        support.require_library()
        cls.g = support.generate("dom0", "--guest-mib", "128")

    def assertOneLineError(self, r: subprocess.CompletedProcess, *fragments: str) -> None:
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("p2mnote: "), lines[0])
        for f in fragments:
            self.assertIn(f, lines[0])

    def test_help(self) -> None:
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for word in ("drgn", "info", "examples", "P2MNOTE_LIBRARY"):
            self.assertIn(word, r.stdout)
        for sub in ("drgn", "info"):
            r = run(sub, "--help")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("--system-map", r.stdout)
            self.assertIn("examples", r.stdout)
        self.assertIn("--vmlinux VMLINUX", run("drgn", "--help").stdout)
        self.assertIn("-s", run("drgn", "--help").stdout)

    def test_no_command(self) -> None:
        r = run()
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)

    def test_version(self) -> None:
        r = run("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("API", r.stdout)
        # One version everywhere: pyproject.toml, the package, the library, the tools.
        with open(os.path.join(support.PYTHON_DIR, "pyproject.toml")) as f:
            project = next(l.split('"')[1] for l in f if l.startswith("version = "))
        self.assertEqual(p2mnote.__version__, project)
        self.assertIn(f"p2mnote {project} ", p2mnote.version())
        support.require_executable(support.ANALYZE, "p2m-analyze")
        t = subprocess.run([support.ANALYZE, "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertIn(f"p2mnote {project} ", t.stdout)

    def test_info(self) -> None:
        r = run("info", self.g.path, "--system-map", self.g.system_map)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ELF vmcore", r.stdout)
        self.assertIn(f"{self.g.manifest['cr3']:#x}", r.stdout)
        self.assertIn(self.g.manifest["banner"].strip(), r.stdout)
        self.assertIn("linear-list", r.stdout)

    def test_info_json(self) -> None:
        r = run("info", self.g.path, "--system-map", self.g.system_map, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        # p2m-analyze info's envelope and keys (Spec/json.md), plus the banner.
        self.assertEqual((j["command"], j["dump"]), ("info", self.g.path))
        res = j["result"]
        self.assertEqual(res["cr3"], hex(self.g.manifest["cr3"]))
        self.assertEqual(res["p2m"]["pfns"], self.g.manifest["nrPfns"])
        self.assertEqual(res["banner"], self.g.manifest["banner"].rstrip("\n"))
        a = subprocess.run([support.ANALYZE, self.g.path, "--system-map", self.g.system_map, "info", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(a.returncode, 0, a.stderr)
        cli = json.loads(a.stdout)["result"]
        self.assertLessEqual(set(cli), set(res), "keys p2m-analyze has that the Python CLI lacks")
        self.assertEqual((res["kind"], res["fileSize"], res["p2m"]["digest"]), (cli["kind"], cli["fileSize"], cli["p2m"]["digest"]))

    def test_info_reports_what_fails(self) -> None:
        g = support.generate("dom0", "--guest-mib", "128", "--no-crash-info")
        r = run("info", g.path)
        self.assertEqual(r.returncode, 1)
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn("cr3:", r.stdout)  # what works is still printed
        self.assertTrue(all(l.startswith("p2mnote: ") for l in r.stderr.strip().splitlines()), r.stderr)
        self.assertIn("no p2m source", r.stderr)

    def test_dump_errors_are_one_line(self) -> None:
        missing = os.path.join(support.tmp_dir(), "missing.vmcore")
        self.assertOneLineError(run("info", missing), missing)
        self.assertOneLineError(run("info", support.tmp_dir()), "directory")
        garbage = os.path.join(support.tmp_dir(), "cli-garbage.bin")
        with open(garbage, "wb") as f:
            f.write(os.urandom(10000))
        self.assertOneLineError(run("info", garbage), "cli-garbage.bin")
        self.assertOneLineError(run("info", self.g.path, "--domain", "5"), "domain 5")
        self.assertOneLineError(run("info", self.g.path, "--system-map", missing), "missing.vmcore")

    def test_drgn_errors_are_one_line(self) -> None:
        support.require_drgn()
        self.assertOneLineError(run("drgn", self.g.path, "--vmlinux", "/nonexistent/vmlinux"), "/nonexistent/vmlinux")
        # A System.map given as the vmlinux: not an ELF file.
        self.assertOneLineError(run("drgn", self.g.path, "--vmlinux", self.g.system_map), os.path.basename(self.g.system_map))
        self.assertOneLineError(run("drgn", self.g.path + ".missing", "--vmlinux", self.g.system_map), ".missing")

    def test_drgn_needs_vmlinux(self) -> None:
        r = run("drgn", self.g.path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--vmlinux", r.stderr)

    def test_drgn_wrong_vmlinux(self) -> None:
        support.require_drgn()
        support.require_real("vmlinux")
        r = run("drgn", self.g.path, "--vmlinux", os.path.join(support.REAL_DIR, "vmlinux"), "-e", "print(1)")
        self.assertOneLineError(r)

    def test_drgn_script_and_exec_on_the_real_dom0(self) -> None:
        support.require_drgn()
        support.require_real("dom0.vmcore", "vmlinux")
        dump = os.path.join(support.REAL_DIR, "dom0.vmcore")
        vmlinux = os.path.join(support.REAL_DIR, "vmlinux")
        gt = os.path.join(support.REAL_DIR, "ground-truth")
        recorded = support.recorded_tasks(gt)
        script = os.path.join(support.tmp_dir(), "list_tasks.py")
        with open(script, "w") as f:
            f.write(
                "import json, sys\n"
                f"sys.path.insert(0, {support.TESTS_DIR!r})\n"
                "import support\n"
                "print(json.dumps([sys.argv[1:], sorted(support.dump_tasks(prog).items())]))\n"
            )
        r = run("drgn", dump, "--vmlinux", vmlinux, "-s", script, "a", "--flag")
        self.assertEqual(r.returncode, 0, r.stderr)
        args, tasks = json.loads(r.stdout)
        self.assertEqual(args, ["a", "--flag"])
        errors, _ = support.compare_tasks(recorded, {pid: tuple(row) for pid, row in tasks})
        self.assertEqual(errors, [], f"{len(recorded)} tasks recorded, {len(tasks)} listed by the script")
        r = run("drgn", dump, "--vmlinux", vmlinux, "-e", "print(prog['init_uts_ns'].name.release.string_().decode())")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), support.recorded_release(gt))
        # Not a terminal and no -s/-e: stdin is the script, with drgn's helpers imported.
        r = run("drgn", dump, "--vmlinux", vmlinux, stdin="print(len(list(for_each_module(prog))))\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), str(support.recorded_module_count(gt)))
        # info says where the VMCOREINFO came from: a Xen dom0 kdump has none of the guest's, so
        # the library hands over the text the kernel prepared in its memory (not "made by").
        r = run("info", dump, "--system-map", os.path.join(support.REAL_DIR, "System.map"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("vmcoreinfo: the kernel’s own text, read from its memory", r.stdout)
        r = run("info", dump, "--system-map", os.path.join(support.REAL_DIR, "System.map"), "--json")
        self.assertEqual(json.loads(r.stdout)["result"].get("vmcoreinfoOrigin"), "kernel memory", r.stdout)


class LibraryLookup(unittest.TestCase):
    """Where libp2mnote.so is looked for, tried in a child with a copy of the package outside
    the checkout (so the .build/ fallbacks do not apply)."""

    def _copy_package(self) -> str:
        dst = os.path.join(support.tmp_dir(), "pkgcopy")
        if not os.path.isdir(dst):
            shutil.copytree(os.path.join(support.PYTHON_DIR, "p2mnote"), os.path.join(dst, "p2mnote"),
                            ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        return dst

    def _child(self, pkg_parent: str, env: dict) -> subprocess.CompletedProcess:
        e = {k: v for k, v in os.environ.items() if k not in ("P2MNOTE_LIBRARY", "LD_LIBRARY_PATH")}
        e.update(env)
        code = (
            "import sys; sys.path.insert(0, %r)\n"
            "import p2mnote, p2mnote._lib as L\n"
            "try:\n"
            "    L.lib(); print('LOADED', L.library_path())\n"
            "except ImportError as e:\n"
            "    print('IMPORTERROR', type(e).__name__, e)\n" % pkg_parent
        )
        r = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def test_env_variable(self) -> None:
        support.require_library()
        real = p2mnote._lib.library_path()
        parent = self._copy_package()
        r = self._child(parent, {"P2MNOTE_LIBRARY": os.path.realpath(real) if os.sep in real else real})
        self.assertIn("LOADED", r.stdout)

    def test_env_variable_that_fails_is_reported(self) -> None:
        r = self._child(self._copy_package(), {"P2MNOTE_LIBRARY": "/nonexistent/libp2mnote.so"})
        self.assertIn("IMPORTERROR LibraryNotFoundError", r.stdout)
        self.assertIn("/nonexistent/libp2mnote.so", r.stdout)

    def test_nothing_found_lists_the_places(self) -> None:
        if os.path.exists("/usr/local/lib/libp2mnote.so") or os.path.exists("/usr/lib/libp2mnote.so"):
            support.skip_loudly("libp2mnote.so is installed system-wide; the not-found case cannot be made")
        parent = self._copy_package()
        r = self._child(parent, {})
        self.assertIn("IMPORTERROR LibraryNotFoundError", r.stdout)
        self.assertIn(os.path.join(parent, "p2mnote", "libp2mnote.so"), r.stdout)
        self.assertIn("system loader", r.stdout)

    def test_next_to_the_package(self) -> None:
        support.require_library()
        real = p2mnote._lib.library_path()
        if os.sep not in real:
            support.skip_loudly("the library came from the system loader; no file to copy")
        dst = os.path.join(support.tmp_dir(), "pkgnext")
        if not os.path.isdir(dst):
            shutil.copytree(os.path.join(support.PYTHON_DIR, "p2mnote"), os.path.join(dst, "p2mnote"),
                            ignore=shutil.ignore_patterns("__pycache__", "*.so"))
            shutil.copy(real, os.path.join(dst, "p2mnote", "libp2mnote.so"))
        r = self._child(dst, {})
        self.assertIn("LOADED " + os.path.join(dst, "p2mnote", "libp2mnote.so"), r.stdout)

    def test_checkout_fallback(self) -> None:
        support.require_library()
        if not any(os.path.exists(os.path.join(support.REPO, ".build", c, "libp2mnote.so")) for c in ("release", "debug")):
            support.skip_loudly("no .build/*/libp2mnote.so in the checkout")
        r = self._child(support.PYTHON_DIR, {})
        self.assertRegex(r.stdout, r"LOADED .*/\.build/(release|debug)/libp2mnote\.so|LOADED libp2mnote\.so")


if __name__ == "__main__":
    unittest.main()


class ManPages(unittest.TestCase):
    """The man pages `make install` installs (Tools/man/make): SYNOPSIS names what each tool
    really takes, and man(1) reads them without a warning."""

    def test_synopsis_and_no_warnings(self) -> None:
        support.require_executable("/usr/bin/man", "man (man-db; make deps installs it)")
        out = support.tmp_dir()
        r = subprocess.run([os.path.join(support.REPO, "Tools", "man", "make"), out], cwd=support.REPO,
                           capture_output=True, text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        for tool in ("p2m-emit", "p2m-inject", "p2m-extract", "p2m-analyze"):
            with open(os.path.join(out, tool + ".1")) as f:
                page = f.read()
            synopsis = page.split(".Sh SYNOPSIS", 1)[1].split(".Sh ", 1)[0]
            self.assertNotIn("subcommand", synopsis, tool)
            w = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", os.path.join(out, tool + ".1")],
                               capture_output=True, text=True, env=dict(os.environ, MANWIDTH="80"), timeout=60)
            self.assertEqual(w.returncode, 0, w.stderr)
            self.assertEqual(w.stderr.strip(), "", f"{tool}: man warns")
            self.assertIn(tool, w.stdout)


class InterruptAtThePrompt(unittest.TestCase):
    """Ctrl-C at p2m-analyze's prompt stops a long rd and the prompt comes back (the session goes
    on). Each read of the dump is slowed (Tools/failshim/slowread.c) so that `rd -m 0 65536`
    takes well over the time the test waits for the prompt to return."""

    def test_ctrl_c_stops_a_long_rd(self) -> None:
        import pty
        import select
        import time

        support.require_executable(support.ANALYZE, "p2m-analyze")
        d = support.tmp_dir()
        shim = os.path.join(d, "slowread.so")
        r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", shim, os.path.join(support.REPO, "Tools", "failshim", "slowread.c"), "-ldl"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The real dom0 dump where there is one (as CI has), else a generated one.
        real = os.path.join(support.REAL_DIR, "dom0.vmcore")
        if os.path.exists(real) and os.path.exists(os.path.join(support.REAL_DIR, "System.map")):
            dump, smap = real, os.path.join(support.REAL_DIR, "System.map")
        else:
            print("\nInterruptAtThePrompt: no real dump; on a generated one", file=sys.stderr)
            g = support.generate("dom0", "--guest-mib", "128", "--seed", "31")
            dump, smap = g.path, g.system_map
        env = dict(os.environ, LD_PRELOAD=shim, SLOWREAD_US="400000", HOME=d, TERM="dumb")
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(support.ANALYZE, [support.ANALYZE, dump, "--system-map", smap], env)
        out = b""

        def until(pattern: bytes, seconds: float) -> bool:
            nonlocal out
            end = time.monotonic() + seconds
            while pattern not in out and time.monotonic() < end:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    try:
                        out += os.read(fd, 65536)
                    except OSError:
                        break
            return pattern in out

        try:
            self.assertTrue(until(b"p2m> ", 60), out[-500:])
            out = b""
            os.write(fd, b"rd -m 100000 65536\r")
            time.sleep(1.5)  # inside the rd: its 128 page reads, slowed, take about 50 s
            started = time.monotonic()
            os.write(fd, b"\x03")
            self.assertTrue(until(b"p2m> ", 10), out[-500:])
            waited = time.monotonic() - started
            self.assertLess(waited, 2.5, "the prompt came back only when rd had finished")
            self.assertIn(b"interrupted", out)
            out = b""
            os.write(fd, b"banner\r")
            self.assertTrue(until(b"Linux version", 30), out[-500:])
            os.write(fd, b"quit\r")
            until(b"\x00", 3)
        finally:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            os.close(fd)
