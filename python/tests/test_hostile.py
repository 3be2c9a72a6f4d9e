"""Hostile input: each case runs in a child interpreter, so a crash (a trap, an abort, a
segfault) in the library is a failed test, not a dead test runner. Each must raise the right
P2MNoteError subclass with a message that names the file."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import unittest

import support

PAGE = 4096


def _open_and_use(path_key: str = "path") -> str:
    """Child body: open ARGS[path_key] with ARGS' options and touch everything."""
    return f"""
    a = ARGS
    d = p2mnote.open(a[{path_key!r}], system_map=a.get("system_map"), vmlinux=a.get("vmlinux"),
                     domain=a.get("domain"), use_note=a.get("use_note", True))
    out = {{"opened": True}}
    for name in a.get("calls", []):
        out[name] = repr(getattr(d, name)())
    return out
"""


class Hostile(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        support.require_library()
        cls.g = support.generate("dom0", "--guest-mib", "128")
        cls.x = support.generate("xl", "--guest-mib", "128")
        cls.dir = os.path.join(support.tmp_dir(), "hostile")
        os.makedirs(cls.dir, exist_ok=True)

    # -- helpers --

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def truncated(self, src: str, size: int, name: str) -> str:
        p = self.path(name)
        with open(src, "rb") as f, open(p, "wb") as o:
            remaining = size
            while remaining > 0:
                chunk = f.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                o.write(chunk)
                remaining -= len(chunk)
        return p

    def expect(self, exc: str, args: dict, body: str = None, names: tuple = None, timeout: float = 120):
        res = support.run_child(body or _open_and_use(), args, timeout=timeout)
        data = res.data
        self.assertFalse(data["ok"], f"expected {exc}, got success {data}")
        self.assertEqual(data["type"], exc, data["message"])
        self.assertIn("P2MNoteError", data["bases"])
        for n in names if names is not None else (os.path.basename(args["path"]),):
            self.assertIn(n, data["message"], f"the message does not name {n}")
        return data

    # -- the dump file itself --

    def test_truncated_dumps(self) -> None:
        size = os.path.getsize(self.g.path)
        for cut in (0x20, 64, 1000, 0x1800, 1 << 20, size // 2, size - PAGE):
            with self.subTest(cut=cut):
                p = self.truncated(self.g.path, cut, f"trunc-{cut}.vmcore")
                self.expect("FormatError", {"path": p, "system_map": self.g.system_map, "calls": ["p2m", "banner"]})

    def test_truncated_xl_dump(self) -> None:
        size = os.path.getsize(self.x.path)
        for cut in (64, 3000, 1 << 16, size // 2):
            with self.subTest(cut=cut):
                p = self.truncated(self.x.path, cut, f"trunc-{cut}.xcore")
                self.expect("FormatError", {"path": p, "system_map": self.x.system_map, "calls": ["p2m", "banner"]})

    def test_garbage(self) -> None:
        rng = random.Random(7)
        for name, head in (("garbage.bin", b""), ("elf-garbage.bin", b"\x7fELF\x02\x01\x01"), ("kdump-garbage.bin", b"KDUMP   ")):
            with self.subTest(name=name):
                p = self.path(name)
                with open(p, "wb") as f:
                    f.write(head + bytes(rng.getrandbits(8) for _ in range(256 * 1024)))
                self.expect("FormatError", {"path": p, "calls": ["p2m", "banner"]})

    def test_directory(self) -> None:
        self.expect("DumpIOError", {"path": self.dir})

    def test_fifo(self) -> None:
        p = self.path("fifo")
        if not os.path.exists(p):
            os.mkfifo(p)
        # Opening a FIFO for reading blocks until a writer comes; the library must not.
        self.expect("DumpIOError", {"path": p}, timeout=60)

    def test_missing_file(self) -> None:
        self.expect("DumpIOError", {"path": self.path("does-not-exist.vmcore")})

    def test_empty_file(self) -> None:
        p = self.path("empty.vmcore")
        open(p, "wb").close()
        self.expect("FormatError", {"path": p})

    def test_unreadable_file(self) -> None:
        if os.geteuid() == 0:
            support.skip_loudly("running as root: a mode-000 file is still readable")
        p = self.path("unreadable.vmcore")
        shutil.copy(self.g.system_map, p)
        os.chmod(p, 0)
        self.expect("DumpIOError", {"path": p})

    def test_corrupted_headers_never_crash(self) -> None:
        # 60 copies of the dump with bytes of its ELF header, program headers and notes
        # changed; each is opened and used in one child. Anything may fail, but only with a
        # P2MNoteError, and the child must exit normally.
        rng = random.Random(11)
        paths = []
        with open(self.g.path, "rb") as f:
            head = f.read(0x3000)
        for i in range(60):
            p = self.path(f"corrupt-{i}.vmcore")
            subprocess.run(["cp", "--sparse=always", self.g.path, p], check=True)
            b = bytearray(head)
            for _ in range(rng.choice([1, 2, 4, 16])):
                where = rng.choice([rng.randrange(0, 0x40), rng.randrange(0x40, 0x200), rng.randrange(0x1000, 0x3000)])
                b[where] = rng.getrandbits(8)
            with open(p, "r+b") as f:
                f.write(b)
            paths.append(p)
        body = """
    out = []
    for p in ARGS["paths"]:
        r = {"path": p}
        try:
            d = p2mnote.open(p, system_map=ARGS["system_map"])
            for name in ("info", "root", "p2m", "banner", "vmcoreinfo"):
                try:
                    getattr(d, name)() if name != "info" else d.info
                except p2mnote.P2MNoteError as e:
                    r[name] = type(e).__name__
            for addr, space in ARGS["reads"]:
                try:
                    d.read(addr, 4096, space)
                except p2mnote.P2MNoteError as e:
                    r.setdefault("reads", []).append(type(e).__name__)
            try:
                d.pfn_to_mfn(300); d.vtop(ARGS["reads"][0][0]); d.command("mod")
            except p2mnote.P2MNoteError as e:
                r["other"] = type(e).__name__
            d.close()
        except p2mnote.P2MNoteError as e:
            r["open"] = type(e).__name__
            if os.path.basename(p) not in e.message:
                r["unnamed"] = e.message
        out.append(r)
    return out
"""
        body = "\n    import os" + body
        m = self.g.manifest
        reads = [[m["symbols"]["linux_banner"], "kvirt"], [0x100000, "pphys"], [m["cr3"], "machine"]]
        res = support.run_child(body, {"paths": paths, "system_map": self.g.system_map, "reads": reads}, timeout=600)
        self.assertTrue(res.data["ok"], res.data)
        unnamed = [r for r in res.data["result"] if "unnamed" in r]
        self.assertEqual(unnamed, [], "open errors whose message does not name the dump")
        for p in paths:
            os.unlink(p)

    # -- p2m sources --

    def test_no_note_and_no_other_p2m_source(self) -> None:
        g = support.generate("dom0", "--guest-mib", "128", "--no-crash-info")
        body = """
    d = p2mnote.open(ARGS["path"])
    d.info
    return d.p2m()
"""
        data = self.expect("NoP2MError", {"path": g.path}, body=body)
        self.assertEqual(data["status"], 4)
        # Pseudo-physical reads and p2m look-ups say the same.
        for call in ('d.read(0x1000, 8, "pphys")', "d.pfn_to_mfn(1)", "d.mfn_to_pfn(5)", "d.p2m_entries(0, 4)"):
            with self.subTest(call=call):
                self.expect("NoP2MError", {"path": g.path}, body=f'\n    d = p2mnote.open(ARGS["path"])\n    return repr({call})\n')
        # With the System.map the linear list is found: no error.
        res = support.run_child('\n    return list(p2mnote.open(ARGS["path"], system_map=ARGS["m"]).p2m())\n', {"path": g.path, "m": g.system_map})
        self.assertTrue(res.data["ok"], res.data)
        self.assertEqual(res.data["result"][1], "linear-list")

    def test_no_note_ignored_note(self) -> None:
        g = support.generate("dom0", "--guest-mib", "128", "--no-crash-info")
        self.expect("NoP2MError", {"path": g.path, "use_note": False, "calls": ["p2m"]})

    # -- symbol files --

    def test_wrong_system_map(self) -> None:
        support.require_real("System.map")
        real_map = os.path.join(support.REAL_DIR, "System.map")
        # Another kernel's System.map: its linux_banner does not read back as this dump's.
        self.expect(
            "MismatchError",
            {"path": self.g.path, "system_map": real_map, "calls": ["banner"]},
            names=(os.path.basename(self.g.path),),
        )

    def test_system_map_not_a_system_map(self) -> None:
        p = self.path("garbage.map")
        with open(p, "wb") as f:
            f.write(bytes(random.Random(3).getrandbits(8) for _ in range(4096)))
        self.expect("FormatError", {"path": self.g.path, "system_map": p}, names=("garbage.map",))

    def test_system_map_missing_or_directory(self) -> None:
        self.expect("DumpIOError", {"path": self.g.path, "system_map": self.path("nope.map")}, names=("nope.map",))
        self.expect("DumpIOError", {"path": self.g.path, "system_map": self.dir}, names=(self.dir,))

    def test_wrong_vmlinux(self) -> None:
        support.require_real("vmlinux")
        # Linux 6.1.0-57's vmlinux against a dump of 6.1.0-56 (the generator's banner), under a
        # name of its own so that the message can be seen to name it.
        vmlinux = self.path("vmlinux-of-another-kernel")
        if not os.path.lexists(vmlinux):
            os.symlink(os.path.join(support.REAL_DIR, "vmlinux"), vmlinux)
        self.expect(
            "MismatchError",
            {"path": self.g.path, "vmlinux": vmlinux, "calls": ["banner"]},
            names=("vmlinux-of-another-kernel",),
        )

    def test_vmlinux_not_an_elf(self) -> None:
        self.expect("FormatError", {"path": self.g.path, "vmlinux": self.g.system_map}, names=(os.path.basename(self.g.system_map),))

    def test_vmlinux_missing(self) -> None:
        self.expect("DumpIOError", {"path": self.g.path, "vmlinux": self.path("no-vmlinux")}, names=("no-vmlinux",))

    # -- guests, addresses, tables --

    def test_domain_5(self) -> None:
        for g in (self.g, self.x):
            with self.subTest(dump=os.path.basename(g.path)):
                data = self.expect("NoDomainError", {"path": g.path, "system_map": g.system_map, "domain": 5})
                self.assertIn("5", data["message"])

    def test_read_across_a_hole(self) -> None:
        mod = self.g.manifest["modules"][0]
        end = mod["base"] + mod["size"]
        body = """
    d = p2mnote.open(ARGS["path"], system_map=ARGS["system_map"])
    return d.read(ARGS["addr"], 32).hex()
"""
        data = self.expect("UnmappedError", {"path": self.g.path, "system_map": self.g.system_map, "addr": end - 16}, body=body)
        self.assertEqual(data["done"], 16)
        self.assertIn(f"{end:#x}", data["message"])

    def test_pseudo_physical_read_across_a_hole(self) -> None:
        end = self.g.ram_end() * PAGE
        body = """
    d = p2mnote.open(ARGS["path"], system_map=ARGS["system_map"])
    return d.read(ARGS["addr"], 8192, "pphys").hex()
"""
        data = self.expect("UnmappedError", {"path": self.g.path, "system_map": self.g.system_map, "addr": end - 4096}, body=body)
        self.assertEqual(data["done"], 4096)

    def test_machine_address_past_the_dump(self) -> None:
        body = """
    d = p2mnote.open(ARGS["path"])
    return d.read(1 << 44, 8, "machine").hex()
"""
        self.expect("NotInDumpError", {"path": self.g.path}, body=body)

    def test_pfn_past_the_p2m(self) -> None:
        body = """
    d = p2mnote.open(ARGS["path"], system_map=ARGS["system_map"])
    return d.pfn_to_mfn(d.p2m().nr_pfns)
"""
        self.expect("RangeError", {"path": self.g.path, "system_map": self.g.system_map}, body=body)

    def test_user_address_and_noncanonical(self) -> None:
        for addr in (0x1000, 0x0000800000000000, 0xFFFF7FFFFFFFF000):
            with self.subTest(addr=hex(addr)):
                body = """
    d = p2mnote.open(ARGS["path"], system_map=ARGS["system_map"])
    return repr(d.vtop(ARGS["addr"]))
"""
                data = support.run_child(body, {"path": self.g.path, "system_map": self.g.system_map, "addr": addr}).data
                self.assertFalse(data["ok"], data)
                self.assertIn(data["type"], ("UnmappedError", "ArgumentError", "RangeError"))

    def test_bad_command(self) -> None:
        body = """
    d = p2mnote.open(ARGS["path"])
    return d.command("no-such-command --x")
"""
        data = support.run_child(body, {"path": self.g.path}).data
        self.assertFalse(data["ok"], data)
        self.assertEqual(data["type"], "ArgumentError")

    def test_truncated_kdump_compressed(self) -> None:
        support.require_real("dom0.kdump-c-d31")
        src = os.path.join(support.REAL_DIR, "dom0.kdump-c-d31")
        size = os.path.getsize(src)
        for cut in (100, 5000, 1 << 20, size // 2):
            with self.subTest(cut=cut):
                p = self.truncated(src, cut, f"trunc-{cut}.kdump")
                body = """
    d = p2mnote.open(ARGS["path"], system_map=ARGS["system_map"])
    d.p2m(); d.banner()
    # A truncated kdump-compressed file may open (its bitmaps are whole) yet miss pages.
    for pfn in range(0, 0x30000, 0x101):
        d.read(pfn * 4096, 64, "pphys")
    return "read everything"
"""
                data = support.run_child(body, {"path": p, "system_map": os.path.join(support.REAL_DIR, "System.map")}).data
                self.assertFalse(data["ok"], f"truncated at {cut}: {data}")
                # NoP2MError: the p2m's own pages are among the missing ones (the message says so).
                self.assertIn(data["type"], ("FormatError", "NotInDumpError", "DumpIOError", "NoP2MError"), data["message"])
                self.assertIn(os.path.basename(p), data["message"])
                os.unlink(p)


if __name__ == "__main__":
    unittest.main()
