"""The Python API on dumps made by p2m-gendump: every answer is checked against the manifest the
generator writes (banner, cr3, modules, p2m runs, sampled bytes), an independent source."""

from __future__ import annotations

import os
import random
import threading
import unittest

import support
from support import UINT64_MAX

import p2mnote

PAGE = 4096


def _kind_of_raw(raw: int) -> str:
    if raw == UINT64_MAX:
        return "invalid"
    cls = raw >> 62
    return {0: "mfn", 1: "identity", 2: "foreign", 3: "foreign"}[cls]


class _GeneratedBase:
    """Tests shared by each generated dump (a mixin; subclasses set make())."""

    container = ""
    expected_source = "linear-list"

    @classmethod
    def make(cls) -> support.Generated:
        raise NotImplementedError

    @classmethod
    def setUpClass(cls) -> None:
        support.require_library()
        cls.g = cls.make()
        cls.m = cls.g.manifest
        cls.d = p2mnote.open(cls.g.path, system_map=cls.g.system_map)

    @classmethod
    def tearDownClass(cls) -> None:
        d = getattr(cls, "d", None)
        if d is not None:
            d.close()

    # -- identity of the dump --

    def test_info(self) -> None:
        info = self.d.info
        self.assertEqual(info.page_size, PAGE)
        self.assertEqual(info.container, self.container)
        self.assertEqual(os.path.realpath(info.path), os.path.realpath(self.g.path))
        self.assertIsNone(info.domain)
        self.assertEqual(info.kernel_offset, 0)
        self.assertGreater(info.machine_bytes, 0)
        self.assertLessEqual(info.machine_bytes, self.m["machinePages"] * PAGE)
        self.assertGreaterEqual(info.symbol_count, len(self.g.symbols()))

    def test_banner(self) -> None:
        self.assertEqual(self.d.banner(), self.m["banner"].rstrip("\n"))

    def test_banner_by_symbol_and_read(self) -> None:
        addr = self.d.symbol("linux_banner")
        self.assertEqual(addr, self.m["symbols"]["linux_banner"])
        want = self.m["banner"].encode()
        self.assertEqual(self.d.read(addr, len(want)), want)
        self.assertEqual(self.d.read_cstring(addr), want)

    def test_symbols_match_system_map(self) -> None:
        for name, addr in self.g.symbols().items():
            self.assertEqual(self.d.symbol(name), addr, name)

    def test_unknown_symbol(self) -> None:
        with self.assertRaises(p2mnote.NoSymbolError) as cm:
            self.d.symbol("no_such_symbol_anywhere")
        self.assertIn("no_such_symbol_anywhere", cm.exception.message)
        self.assertEqual(cm.exception.status, 5)

    def test_root_is_manifest_cr3(self) -> None:
        root, how = self.d.root()
        self.assertEqual(root, self.m["cr3"])
        self.assertTrue(how)

    def test_vmcoreinfo(self) -> None:
        text, synthesised, origin = self.d.vmcoreinfo()
        self.assertIsInstance(text, bytes)
        lines = dict(l.split("=", 1) for l in text.decode().splitlines() if "=" in l)
        self.assertEqual(lines.get("OSRELEASE"), self.m["osRelease"])
        self.assertEqual(lines.get("PAGESIZE"), "4096")
        self.assertEqual(int(lines["SYMBOL(swapper_pg_dir)"], 16), self.m["symbols"]["swapper_pg_dir"])
        self.assertEqual(int(lines.get("KERNELOFFSET", "0"), 16), 0)
        self.assertTrue(synthesised)  # p2m-gendump writes no VMCOREINFO of the guest by default

    # -- p2m --

    def test_p2m_source(self) -> None:
        n, source, location = self.d.p2m()
        self.assertEqual(n, self.m["nrPfns"])
        self.assertEqual(source, self.expected_source)
        self.assertTrue(location)

    def test_pfn_to_mfn_agrees_with_manifest_runs(self) -> None:
        rng = random.Random(1)
        pfns = set()
        for r in self.m["p2m"]:
            s, n = r["start"], r["count"]
            pfns.update({s, s + n - 1, s + n // 2})
            pfns.update(rng.randrange(s, s + n) for _ in range(min(n, 20)))
        pfns.update(rng.randrange(0, self.m["nrPfns"]) for _ in range(500))
        for pfn in sorted(pfns):
            raw = self.g.expected_raw(pfn)
            kind = _kind_of_raw(raw)
            frame, got_kind = self.d.pfn_to_mfn(pfn)
            self.assertEqual(got_kind, kind, f"pfn {pfn:#x}")
            if kind == "invalid":
                self.assertIsNone(frame, f"pfn {pfn:#x}")
            elif kind == "identity":
                self.assertEqual(frame, pfn, f"pfn {pfn:#x}")
            else:
                self.assertEqual(frame, raw & ((1 << 62) - 1), f"pfn {pfn:#x}")

    def test_p2m_entries_over_ram(self) -> None:
        end = self.g.ram_end() + 4096
        got = self.d.p2m_entries(0, end)
        self.assertEqual(len(got), end)
        want = self.g.expected_range(0, end)
        diffs = [i for i in range(end) if got[i] != want[i]]
        self.assertEqual(diffs[:10], [], f"{len(diffs)} entries differ from the manifest")

    def test_p2m_counts_over_the_first_mebi_pfns(self) -> None:
        # The manifest's counts cover the whole table; everything past RAM is INVALID, so the
        # counts over [0, 2^20) are the totals minus the invalid pfns past 2^20.
        n = 1 << 20
        got = self.d.p2m_entries(0, n)
        counts = {"mfn": 0, "invalid": 0, "identity": 0, "foreign": 0}
        for raw in got:
            counts[_kind_of_raw(raw)] += 1
        total = self.m["p2mCounts"]
        self.assertEqual(counts["mfn"], total["mfn"])
        self.assertEqual(counts["identity"], total["identity"])
        self.assertEqual(counts["foreign"], total["foreign"])
        self.assertEqual(counts["invalid"], total["invalid"] - (self.m["nrPfns"] - n))

    def test_p2m_entries_at_the_end(self) -> None:
        n = self.m["nrPfns"]
        got = self.d.p2m_entries(n - 3, 10)
        self.assertEqual(len(got), 3)
        self.assertEqual(got, self.g.expected_range(n - 3, 3))
        try:
            past = self.d.p2m_entries(n, 10)
        except p2mnote.RangeError:
            past = []
        self.assertEqual(past, [])

    def test_pfn_past_the_table(self) -> None:
        with self.assertRaises(p2mnote.RangeError) as cm:
            self.d.pfn_to_mfn(self.m["nrPfns"])
        self.assertEqual(cm.exception.status, 10)

    def test_mfn_to_pfn_inverts(self) -> None:
        rng = random.Random(2)
        ram = [r for r in self.m["p2m"] if r["kind"] in ("ascending", "descending", "literal")]
        for _ in range(200):
            r = rng.choice(ram)
            pfn = rng.randrange(r["start"], r["start"] + r["count"])
            mfn = self.g.expected_raw(pfn)
            self.assertEqual(self.d.mfn_to_pfn(mfn), [pfn], f"mfn {mfn:#x}")
        self.assertEqual(self.d.mfn_to_pfn((1 << 40) + 12345), [])

    # -- memory --

    def test_samples_in_three_spaces(self) -> None:
        for s in self.m["samples"]:
            want = bytes.fromhex(s["bytes"])
            off = s["vaddr"] & (PAGE - 1)
            self.assertEqual(self.d.read(s["vaddr"], len(want)), want, s["what"])
            self.assertEqual(self.d.read(s["pfn"] * PAGE + off, len(want), "pphys"), want, s["what"])
            self.assertEqual(self.d.read(s["mfn"] * PAGE + off, len(want), "machine"), want, s["what"])
            self.assertEqual(self.d.pfn_to_mfn(s["pfn"]), (s["mfn"], "mfn"), s["what"])

    def test_vtop_of_symbols_lands_on_the_same_bytes(self) -> None:
        for name, addr in self.g.symbols().items():
            if name == "_end":  # one past the image: not mapped
                with self.assertRaises(p2mnote.UnmappedError):
                    self.d.vtop(addr)
                continue
            w = self.d.vtop(addr)
            self.assertEqual(w.vaddr, addr)
            self.assertIn(w.page_size, (PAGE, 2 << 20, 1 << 30))
            self.assertEqual(w.maddr & (PAGE - 1), addr & (PAGE - 1), name)
            n = min(64, PAGE - (addr & (PAGE - 1)))
            self.assertEqual(self.d.read(w.maddr, n, "machine"), self.d.read(addr, n), name)
            # The walk: top level first, each index the vaddr's bits for that level.
            self.assertGreaterEqual(len(w.steps), 2, name)
            self.assertEqual(w.steps[0].level, 4, name)
            for st in w.steps:
                self.assertEqual(st.index, (addr >> (12 + 9 * (st.level - 1))) & 511, name)
            self.assertEqual(w.steps[0].table_mfn, self.m["cr3"] >> 12, name)
            # Every frame of the kernel image is one pfn's in a generated dump: the pfn must be
            # named, and the pseudo-physical read must land on the same bytes.
            self.assertIsNotNone(w.pfn, name)
            frame, kind = self.d.pfn_to_mfn(w.pfn)
            self.assertEqual((frame, kind), (w.maddr >> 12, "mfn"), name)
            self.assertEqual(self.d.read(w.paddr, n, "pphys"), self.d.read(addr, n), name)

    def test_read_u64(self) -> None:
        addr = self.m["symbols"]["linux_banner"]
        self.assertEqual(self.d.read_u64(addr), int.from_bytes(self.m["banner"][:8].encode(), "little"))

    def test_modules_command(self) -> None:
        env = self.d.command("mod")
        self.assertEqual(env["command"], "mod")
        got = [(m["name"], int(m["base"], 16), m["size"]) for m in env["result"]["modules"]]
        want = [(m["name"], m["base"], m["size"]) for m in self.m["modules"]]
        self.assertEqual(got, want)
        self.assertEqual(
            [int(m["module"], 16) for m in env["result"]["modules"]],
            [m["structAddress"] for m in self.m["modules"]],
        )

    def test_modules_by_reading_the_list(self) -> None:
        # struct module: list_head at +8, name[56] at +0x18 (as in Linux 6.1 and the generator).
        head = self.d.symbol("modules")
        names, structs = [], []
        node = self.d.read_u64(head)
        while node != head and len(names) < 1000:
            mod = node - 8
            structs.append(mod)
            names.append(self.d.read_cstring(mod + 0x18, 56).decode())
            node = self.d.read_u64(node)
        self.assertEqual(names, [m["name"] for m in self.m["modules"]])
        self.assertEqual(structs, [m["structAddress"] for m in self.m["modules"]])

    def test_read_across_a_hole_in_kvirt(self) -> None:
        mod = self.m["modules"][0]
        end = mod["base"] + mod["size"]  # the next page is not mapped (the gap between modules)
        with self.assertRaises(p2mnote.UnmappedError) as cm:
            self.d.read(end - 16, 32)
        e = cm.exception
        self.assertEqual(e.done, 16)
        self.assertEqual(e.data, self.d.read(end - 16, 16))
        self.assertIn(f"{end:#x}", e.message)

    def test_read_across_a_hole_in_pphys(self) -> None:
        end = self.g.ram_end() * PAGE
        with self.assertRaises(p2mnote.UnmappedError) as cm:
            self.d.read(end - 8, 16, "pphys")
        self.assertEqual(cm.exception.done, 8)

    def test_machine_address_not_in_dump(self) -> None:
        with self.assertRaises(p2mnote.NotInDumpError) as cm:
            self.d.read(1 << 45, 8, "machine")
        self.assertEqual(cm.exception.status, 7)

    def test_read_into_and_spaces(self) -> None:
        s = self.m["samples"][0]
        buf = bytearray(16)
        self.d.read_into(s["vaddr"], buf)
        self.assertEqual(bytes(buf), bytes.fromhex(s["bytes"])[:16])
        with self.assertRaises(ValueError):
            self.d.read(0, 8, "nowhere")
        self.assertEqual(self.d.read(s["vaddr"], 0), b"")

    def test_threads_share_a_handle(self) -> None:
        samples = self.m["samples"]
        errors = []

        def work(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for _ in range(300):
                    s = rng.choice(samples)
                    want = bytes.fromhex(s["bytes"])
                    space = rng.choice(["kvirt", "pphys", "machine"])
                    addr = {"kvirt": s["vaddr"], "pphys": s["pfn"] * PAGE, "machine": s["mfn"] * PAGE}[space]
                    addr += s["vaddr"] & (PAGE - 1) if space != "kvirt" else 0
                    if self.d.read(addr, len(want), space) != want:
                        errors.append((space, s["what"]))
                    if rng.random() < 0.1:
                        try:
                            self.d.read(1 << 45, 8, "machine")
                            errors.append("no error for a bad address")
                        except p2mnote.NotInDumpError as e:
                            if "0x200000000000" not in e.message:
                                errors.append(("message of another thread?", e.message))
            except Exception as e:  # pragma: no cover - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])


class Dom0Generated(_GeneratedBase, unittest.TestCase):
    container = "ELF vmcore"

    @classmethod
    def make(cls) -> support.Generated:
        return support.generate("dom0", "--guest-mib", "128")


class Dom0FragmentedGenerated(_GeneratedBase, unittest.TestCase):
    container = "ELF vmcore"

    @classmethod
    def make(cls) -> support.Generated:
        return support.generate("dom0", "--guest-mib", "128", "--profile", "fragmented", "--seed", "3")


class Dom0RandomGenerated(_GeneratedBase, unittest.TestCase):
    container = "ELF vmcore"

    @classmethod
    def make(cls) -> support.Generated:
        return support.generate("dom0", "--guest-mib", "128", "--profile", "random", "--seed", "5")


class XLGenerated(_GeneratedBase, unittest.TestCase):
    container = "xl dump-core"

    @classmethod
    def make(cls) -> support.Generated:
        return support.generate("xl", "--guest-mib", "128", "--module-base", "0xffffffffc0000000")


class Dom0WithNote(_GeneratedBase, unittest.TestCase):
    container = "ELF vmcore"
    expected_source = "note"

    @classmethod
    def make(cls) -> support.Generated:
        return support.generate_with_note("--guest-mib", "128")

    def test_note_and_own_tables_agree(self) -> None:
        with p2mnote.open(self.g.path, system_map=self.g.system_map, use_note=False) as own:
            self.assertNotEqual(own.p2m().source, "note")
            end = self.g.ram_end() + 512
            self.assertEqual(own.p2m_entries(0, end), self.d.p2m_entries(0, end))

    def test_note_without_symbols(self) -> None:
        # The note alone maps pseudo-physical addresses: no System.map needed.
        with p2mnote.open(self.g.path) as d:
            self.assertEqual(d.p2m().source, "note")
            s = self.m["samples"][0]
            want = bytes.fromhex(s["bytes"])
            self.assertEqual(d.read(s["pfn"] * PAGE + (s["vaddr"] & (PAGE - 1)), len(want), "pphys"), want)

    def test_check_command(self) -> None:
        env = self.d.command("check")
        self.assertTrue(env["result"]["ok"], env)


class HandleLifecycle(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        support.require_library()
        cls.g = support.generate("dom0", "--guest-mib", "128")

    def test_context_manager_and_close(self) -> None:
        with p2mnote.open(self.g.path, system_map=self.g.system_map) as d:
            self.assertFalse(d.closed)
            d.banner()
        self.assertTrue(d.closed)
        with self.assertRaises(ValueError):
            d.banner()
        with self.assertRaises(ValueError):
            d.read(0, 8)
        d.close()  # twice is fine

    def test_pathlike_and_bytes_paths(self) -> None:
        import pathlib

        with p2mnote.open(pathlib.Path(self.g.path), system_map=os.fsencode(self.g.system_map)) as d:
            self.assertEqual(d.banner(), self.g.manifest["banner"].rstrip("\n"))

    def test_options(self) -> None:
        m = self.g.manifest
        with p2mnote.open(self.g.path, system_map=self.g.system_map, cr3=m["cr3"]) as d:
            root, how = d.root()
            self.assertEqual(root, m["cr3"])
        with p2mnote.open(self.g.path, p2m_mfn=m["fllMfn"]) as d:
            n, source, _ = d.p2m()
            self.assertEqual(source, "frame-tree")
            self.assertEqual(d.pfn_to_mfn(300), (self.g.expected_raw(300), "mfn"))

    def test_version(self) -> None:
        v = p2mnote.version()
        self.assertRegex(v, r"^p2mnote \d+\.\d+\.\d+ .*API \d+")
        self.assertTrue(p2mnote._lib.library_path())

    def test_errors_hierarchy(self) -> None:
        self.assertTrue(issubclass(p2mnote.DumpIOError, OSError))
        self.assertTrue(issubclass(p2mnote.UnmappedError, p2mnote.AddressError))
        for cls in (p2mnote.FormatError, p2mnote.NoP2MError, p2mnote.MismatchError, p2mnote.RangeError):
            self.assertTrue(issubclass(cls, p2mnote.P2MNoteError))
        e = p2mnote.FormatError("x: bad")
        self.assertEqual((e.status, e.message, str(e)), (3, "x: bad", "x: bad"))


if __name__ == "__main__":
    unittest.main()
