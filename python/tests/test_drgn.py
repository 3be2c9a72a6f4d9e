"""p2mnote.drgn on generated dumps (no vmlinux: memory only): the segments, the page cache,
FaultError, and what drgn 0.3.0 requires (set_linux_kernel_custom first; later segments win)."""

from __future__ import annotations

import unittest

import support

import p2mnote

PAGE = 4096


class DrgnOnGenerated(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        support.require_library()
        support.require_drgn()
        import drgn
        import p2mnote.drgn

        cls.drgn = drgn
        cls.g = support.generate("dom0", "--guest-mib", "128")
        cls.m = cls.g.manifest
        cls.prog = p2mnote.drgn.program(cls.g.path, system_map=cls.g.system_map)

    def test_is_a_linux_kernel_program(self) -> None:
        self.assertTrue(self.prog.flags & self.drgn.ProgramFlags.IS_LINUX_KERNEL)
        # The generator's kernel has no vmcoreinfo_data: the library's synthesised text is used.
        self.assertEqual(self.prog.config["p2mnote.vmcoreinfo_source"], "synthesised")
        self.assertEqual(self.prog.platform.arch, self.drgn.Architecture.X86_64)

    def test_virtual_reads_are_the_librarys(self) -> None:
        for s in self.m["samples"]:
            want = bytes.fromhex(s["bytes"])
            self.assertEqual(self.prog.read(s["vaddr"], len(want)), want, s["what"])

    def test_physical_reads_are_pseudo_physical(self) -> None:
        for s in self.m["samples"]:
            want = bytes.fromhex(s["bytes"])
            paddr = s["pfn"] * PAGE + (s["vaddr"] & (PAGE - 1))
            self.assertEqual(self.prog.read(paddr, len(want), True), want, s["what"])

    def test_reads_across_pages_and_large_reads(self) -> None:
        d = self.prog.config["p2mnote.dump"]
        base = self.m["symbols"]["linux_banner"] & ~(PAGE - 1)
        for addr, n in ((base + PAGE - 3, 10), (base, 3 * PAGE), (base + 100, 5 * PAGE + 7), (base, PAGE)):
            self.assertEqual(self.prog.read(addr, n), d.read(addr, n), (hex(addr), n))

    def test_fault_error_names_the_failing_page(self) -> None:
        mod = self.m["modules"][0]
        end = mod["base"] + mod["size"]
        for n in (32, 8 * PAGE):  # through the cache and the direct path
            with self.assertRaises(self.drgn.FaultError) as cm:
                self.prog.read(end - 16, n)
            self.assertEqual(cm.exception.address, end)
            self.assertIn("does not translate", cm.exception.message)
        # A failed page is remembered: no second library call.
        cache = self.prog.config["p2mnote.kvirt_cache"]
        calls = cache.library_calls
        with self.assertRaises(self.drgn.FaultError) as cm:
            self.prog.read(end + 8, 8)
        self.assertEqual(cache.library_calls, calls)
        self.assertEqual(cm.exception.address, end + 8)

    def test_page_cache_serves_small_reads(self) -> None:
        cache = self.prog.config["p2mnote.kvirt_cache"]
        addr = self.m["symbols"]["init_uts_ns"]
        self.prog.read(addr, 8)
        calls = cache.library_calls
        for i in range(100):
            self.prog.read(addr + 8 * (i % 50), 8)
        self.assertEqual(cache.library_calls, calls)

    def test_user_half_is_not_ours(self) -> None:
        # User addresses go to drgn's own page-table walker, which cannot read PV page tables:
        # it must fail (or at least not come from our kernel-half segment).
        with self.assertRaises(self.drgn.FaultError):
            self.prog.read(0x400000, 8)

    def test_set_linux_kernel_custom_must_come_first(self) -> None:
        prog = self.drgn.Program(self.prog.platform)
        prog.add_memory_segment(0xFFFF800000000000, 1 << 20, lambda *a: b"\0" * a[1], False)
        d = self.prog.config["p2mnote.dump"]
        with self.assertRaisesRegex(ValueError, "already initialized"):
            prog.set_linux_kernel_custom(d.vmcoreinfo().text, False)

    def test_the_synthesised_vmcoreinfo_is_accepted(self) -> None:
        d = self.prog.config["p2mnote.dump"]
        text, synthesised, _origin = d.vmcoreinfo()
        prog = self.drgn.Program(self.prog.platform)
        prog.set_linux_kernel_custom(text, False)  # raises if drgn refuses it
        # drgn needs OSRELEASE, PAGESIZE and SYMBOL(swapper_pg_dir); without one it refuses.
        for key in ("OSRELEASE", "PAGESIZE", "SYMBOL(swapper_pg_dir)"):
            stripped = b"\n".join(l for l in text.split(b"\n") if not l.startswith(key.encode() + b"=")) + b"\n"
            with self.subTest(without=key), self.assertRaises(Exception):
                self.drgn.Program(self.prog.platform).set_linux_kernel_custom(stripped, False)

    def test_program_from_an_open_dump(self) -> None:
        import p2mnote.drgn

        with p2mnote.open(self.g.path, system_map=self.g.system_map) as d:
            prog = p2mnote.drgn.program(d)
            s = self.m["samples"][0]
            self.assertEqual(prog.read(s["vaddr"], 16), bytes.fromhex(s["bytes"])[:16])

    def test_open_errors_pass_through(self) -> None:
        import p2mnote.drgn

        with self.assertRaises(p2mnote.DumpIOError):
            p2mnote.drgn.program(self.g.path + ".missing")


if __name__ == "__main__":
    unittest.main()
