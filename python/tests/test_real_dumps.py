"""drgn through p2mnote.drgn on the real Xen dumps (Xen 4.17, Debian 12's current Linux 6.1, made under qemu
from Debian's packages), checked against what was recorded live just before each dump
(ground-truth/), and 1000 random kernel addresses read four ways: drgn, the library, the
p2m-analyze CLI and python3-libkdumpfile.

Skips loudly (a "SKIPPED:" line on stderr) when P2M_REAL_DUMP_DIR lacks the files or drgn is
missing."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
import sys
import time
import unittest
from typing import Dict, List, Optional, Set, Tuple

import support

import p2mnote

N_ADDRESSES = 1000
READ = 64


def _read_system_map(path: str) -> Dict[str, Tuple[int, str]]:
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                out[parts[2]] = (int(parts[0], 16), parts[1])
    return out


def _modules_truth(path: str) -> List[Tuple[str, int, int]]:
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                out.append((parts[0], int(parts[5], 16), int(parts[1])))
    return out


def kdumpfile_context(path: str, init_top_pgt: int):
    """A python3-libkdumpfile context that reads a Xen PV guest's kernel virtual addresses.
    What works for libkdumpfile 0.5.1 (Debian 12) on these dumps: addrxlat.ostype = "linux",
    addrxlat.force.virt_bits = 48 (else "Cannot determine 5-level paging" on a dom0 kdump), and
    the root page table forced to init_top_pgt as a kernel virtual address
    (addrxlat.force.rootpgt.as = KDUMP_KVADDR, .addr = init_top_pgt). An xl dump-core needs
    only the ostype; the others do no harm there."""
    import kdumpfile

    k = kdumpfile.kdumpfile(path)
    k.attr["addrxlat.ostype"] = "linux"
    k.attr["addrxlat.force.virt_bits"] = 48
    k.attr["addrxlat.force.rootpgt.as"] = kdumpfile.KDUMP_KVADDR
    k.attr["addrxlat.force.rootpgt.addr"] = init_top_pgt
    return k


class _RealDump:
    dump = ""
    truth = ""  # directory under REAL_DIR with tasks.txt, modules.txt, dmesg-tail.txt, uname.txt
    # What get_dmesg shows after the recorded tail: the panic of `echo c > /proc/sysrq-trigger`
    # for the dom0 kdumps; nothing for the live `xl dump-core` of the domU.
    after_tail_first: List[str] = []
    after_tail_last: Optional[str] = None
    # A crashed host's dump holds several guests: which one (None: the dump's own).
    domain: Optional[int] = None
    # Whether this guest panicked (the dom0 of a kdump: `echo c > /proc/sysrq-trigger`).
    panicked = False
    # Whether the dump left out user pages (makedumpfile's dump level 31).
    user_pages_excluded = False

    @classmethod
    def setUpClass(cls) -> None:
        support.require_library()
        support.require_drgn()
        support.require_real(cls.dump, "vmlinux", "System.map", cls.truth)
        import p2mnote.drgn

        cls.dir = support.REAL_DIR
        cls.path = os.path.join(cls.dir, cls.dump)
        cls.vmlinux = os.path.join(cls.dir, "vmlinux")
        cls.system_map = os.path.join(cls.dir, "System.map")
        cls.gt = os.path.join(cls.dir, cls.truth)
        t = time.perf_counter()
        cls.prog = p2mnote.drgn.program(cls.path, vmlinux=cls.vmlinux, domain=cls.domain)
        cls.setup_seconds = time.perf_counter() - t
        cls.lib = cls.prog.config["p2mnote.dump"]

    # -- ground truth --

    def test_tasks_equal_proc(self) -> None:
        recorded = support.recorded_tasks(self.gt)
        got = support.dump_tasks(self.prog)
        errors, allowed = support.compare_tasks(recorded, got)
        self.assertEqual(errors, [], f"{len(recorded)} tasks recorded, {len(got)} in the dump")
        if allowed:
            print(f"\n{self.dump} {self.truth}: workqueue workers that came or went: {allowed}", file=sys.stderr)
        # task->comm itself is the first 15 bytes of what /proc showed, up to a worker's suffix.
        for t in support.leaders(self.prog):
            comm = t.comm.string_().decode()
            self.assertTrue(support.proc_comm(t).startswith(comm), comm)

    def test_modules_equal_proc_modules(self) -> None:
        from drgn.helpers.linux.module import for_each_module

        got = []
        for m in for_each_module(self.prog):
            name = m.name.string_().decode()
            try:
                base = m.core_layout.base.value_()  # Linux < 6.4
            except AttributeError:
                base = m.mem[0].base.value_()
            got.append((name, base))
        want = [(n, b) for n, b, _ in _modules_truth(os.path.join(self.gt, "modules.txt"))]
        self.assertEqual(got, want)
        # The library's own module list says the same.
        lib_mods = [(m["name"], int(m["base"], 16)) for m in self.lib.command("mod")["result"]["modules"]]
        self.assertEqual(lib_mods, want)

    def test_dmesg_ends_with_the_recorded_tail(self) -> None:
        from drgn.helpers.linux.printk import get_dmesg

        lines = get_dmesg(self.prog).decode("utf-8", "replace").splitlines()
        tail = support.recorded_dmesg_tail(self.gt)
        starts = [i for i in range(len(lines) - len(tail) + 1) if lines[i : i + len(tail)] == tail]
        self.assertEqual(len(starts), 1, "the recorded tail is not (once) in the dump's dmesg")
        after = lines[starts[0] + len(tail) :]
        strip = lambda l: l.split("] ", 1)[1] if l.startswith("[") and "] " in l else l  # noqa: E731
        # Under qemu's emulation the clocksource watchdog may log a slow read at any moment (seen on
        # guests of both sets, and on domu1 of Debian 13's set after its pause for xl dump-core):
        # the one kind of line allowed after the record.
        after = [l for l in after if not strip(l).startswith("clocksource: Long readout interval")]
        self.assertEqual([strip(l) for l in after[: len(self.after_tail_first)]], self.after_tail_first)
        if self.after_tail_last is None:
            self.assertEqual(after, [], "lines after the recorded tail")
        else:
            self.assertEqual(strip(after[-1]), self.after_tail_last)

    # -- registers at the crash (Xen's per-CPU stacks, .xen_prstatus) --

    def _frames(self, trace) -> List[str]:
        return [f.name or "?" for f in trace]

    def test_registers_and_every_cpus_backtrace(self) -> None:
        """Each guest CPU the dump holds registers for unwinds from them: its current task's
        trace starts where those registers point, and reaches the task's stack base."""
        from drgn.helpers.linux.cpumask import for_each_online_cpu, for_each_possible_cpu
        from drgn.helpers.linux.sched import cpu_curr

        regs = self.lib.registers()
        self.assertTrue(regs, "no register set")
        online = set(for_each_online_cpu(self.prog))
        cpus = [r.cpu for r in regs if r.cpu is not None]
        # Every CPU online at the crash has its set (a CPU that panic() was stopping may be
        # offline already and still have one), each CPU once, each a possible CPU.
        self.assertEqual(len(cpus), len(set(cpus)), [(r.cpu, r.source) for r in regs])
        self.assertLessEqual(online, set(cpus), [(r.cpu, r.source) for r in regs])
        self.assertLessEqual(set(cpus), set(for_each_possible_cpu(self.prog)))
        for r in regs:
            task = cpu_curr(self.prog, r.cpu)
            trace = self.prog.stack_trace(task)
            self.assertGreater(len(trace), 1, f"CPU {r.cpu}: {self._frames(trace)}")
            self.assertEqual(trace[0].pc, r["rip"], f"CPU {r.cpu}: the trace starts at the saved rip")
            # The unwind reaches that task's own kernel stack (it may start on the CPU's IRQ
            # stack: a CPU that panic() was stopping took the IPI in an interrupt).
            stack = task.stack.value_()
            sps = [f.sp for f in trace]
            self.assertTrue(any(stack <= sp < stack + (16 << 10) for sp in sps),
                            f"CPU {r.cpu}: no frame on {task.comm.string_()}'s stack {stack:#x}: {[hex(x) for x in sps]}")

    def test_crashed_thread_backtrace(self) -> None:
        if not self.panicked:
            with self.assertRaises(LookupError):  # panic_cpu is -1: nothing crashed here
                self.prog.crashed_thread()
            return
        names = self._frames(self.prog.crashed_thread().stack_trace())
        # The panic went through sysrq (the recorded dmesg says "sysrq: Trigger a crash"), then
        # panic() kexec'd into Xen through a hypercall.
        self.assertIn("panic", names)
        self.assertIn("sysrq_handle_crash", names)
        self.assertLess(names.index("panic"), names.index("sysrq_handle_crash"), names)
        self.assertTrue(names[0].startswith("xen_") or "hypercall" in names[0], names)

    def test_every_tasks_backtrace(self) -> None:
        from drgn.helpers.linux.pid import for_each_task

        failed = []
        for t in for_each_task(self.prog):
            try:
                if len(self.prog.stack_trace(t)) == 0:
                    failed.append((t.pid.value_(), "empty"))
            except Exception as e:  # noqa: BLE001 - each failure is reported
                failed.append((t.pid.value_(), str(e)))
        self.assertEqual(failed, [])

    def test_user_memory_of_every_process(self) -> None:
        """User-half reads walk the process's page tables in machine memory: each process's
        argv names the program Linux named it after (task->comm), and the pseudo-physical
        address follow_phys gives is a pfn the p2m maps to the frame holding those bytes."""
        from drgn import FaultError
        from drgn.helpers.linux.mm import access_remote_vm, cmdline, follow_phys
        from drgn.helpers.linux.pid import for_each_task

        if self.user_pages_excluded:
            # makedumpfile's dump level 31 drops user data: said as such, never other bytes.
            t = next(t for t in for_each_task(self.prog) if t.mm)
            with self.assertRaisesRegex(FaultError, "excluded by makedumpfile's dump level"):
                cmdline(t)
            return
        seen = 0
        for t in for_each_task(self.prog):
            if not t.mm:
                continue
            seen += 1
            comm = t.comm.string_().decode()
            argv = cmdline(t)
            self.assertTrue(argv, f"{t.pid.value_()} {comm}: empty argv")
            names = {os.path.basename(a.decode(errors="replace"))[:15] for a in argv[:2]}
            self.assertIn(comm, names, f"{t.pid.value_()}: argv {argv}")
            a = t.mm.arg_start.value_()
            phys = follow_phys(t.mm, a).value_()
            entry = self.lib.pfn_to_mfn(phys >> 12)
            self.assertEqual(entry.kind, "mfn", f"{t.pid.value_()} {comm}: pfn {phys >> 12:#x} is {entry}")
            n = min(64, 4096 - (a & 4095))
            self.assertEqual(self.lib.read(phys, n, "pphys"), access_remote_vm(t.mm, a, n))
        self.assertGreater(seen, 0, "no process with a user address space")

    def test_crash_bt_all(self) -> None:
        import contextlib
        import io

        from drgn.commands import run_command

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run_command(self.prog, "crash bt -a")
        text = out.getvalue()
        for r in self.lib.registers():
            self.assertIn(f"CPU: {r.cpu}", text)
        self.assertNotIn("were not saved", text)

    def test_banner_and_utsname_equal_uname(self) -> None:
        with open(os.path.join(self.gt, "uname.txt")) as f:
            uname = f.read().strip()
        uts = self.prog["init_uts_ns"].name
        fields = {k: getattr(uts, k).string_().decode() for k in ("sysname", "nodename", "release", "version", "machine")}
        self.assertEqual(
            uname,
            f"{fields['sysname']} {fields['nodename']} {fields['release']} {fields['version']} {fields['machine']} GNU/Linux",
        )
        banner = self.prog["linux_banner"].string_().decode().rstrip("\n")
        self.assertTrue(banner.startswith(f"Linux version {fields['release']} "), banner)
        self.assertTrue(banner.endswith(f" {fields['version']}"), banner)
        self.assertEqual(self.lib.banner(), banner)

    def test_vmcoreinfo_and_build_id(self) -> None:
        text, synthesised, origin = self.lib.vmcoreinfo()
        lines = dict(l.split("=", 1) for l in text.decode().splitlines() if "=" in l)
        main = self.prog.main_module()
        self.assertIsNotNone(main.build_id)
        self.assertEqual(lines.get("BUILD-ID"), main.build_id.hex())
        self.assertEqual(os.path.realpath(main.debug_file_path), os.path.realpath(self.vmlinux))
        self.assertEqual(lines.get("OSRELEASE"), self.prog["init_uts_ns"].name.release.string_().decode())
        # Neither dom0 kdump (Xen's kexec path) nor xl dump-core carries a VMCOREINFO of the guest:
        # the library hands over the one the kernel prepared in its memory.
        self.assertTrue(synthesised)
        self.assertEqual(origin, "kernel memory")

    def test_kernel_vmcoreinfo_and_mm_helpers(self) -> None:
        # drgn gets the kernel's own VMCOREINFO (vmcoreinfo_data in guest memory), so the mm
        # helpers that need LENGTH(mem_section) (vmemmap, pfn_to_page) and the slab walkers work.
        from drgn.helpers.linux.mm import page_to_virt, virt_to_page
        from drgn.helpers.linux.pid import for_each_task
        from drgn.helpers.linux.slab import find_slab_cache, slab_cache_for_each_allocated_object

        self.assertEqual(self.prog.config["p2mnote.vmcoreinfo_source"], "kernel memory")
        kernel = self.lib.kernel_vmcoreinfo()
        self.assertIn(b"LENGTH(mem_section)=", kernel)
        synthesised = dict(l.split(b"=", 1) for l in self.lib.vmcoreinfo().text.splitlines() if b"=" in l)
        own = dict(l.split(b"=", 1) for l in kernel.splitlines() if b"=" in l)
        for key in (b"OSRELEASE", b"BUILD-ID", b"PAGESIZE", b"SYMBOL(swapper_pg_dir)", b"KERNELOFFSET"):
            self.assertEqual(synthesised.get(key), own.get(key), key)
        init_task = self.prog["init_task"].address_of_().value_()
        tasks = [t for t in for_each_task(self.prog) if t.value_() != init_task]
        for t in tasks:
            self.assertEqual(page_to_virt(virt_to_page(t)).value_(), t.value_() & ~0xFFF)
        objs = {o.value_() for o in slab_cache_for_each_allocated_object(find_slab_cache(self.prog, "task_struct"), "struct task_struct")}
        self.assertLessEqual({t.value_() for t in tasks}, objs)

    def test_kallsyms_without_vmlinux(self) -> None:
        import p2mnote.drgn

        prog = p2mnote.drgn.program(self.path, system_map=self.system_map, domain=self.domain)
        syms = _read_system_map(self.system_map)
        for name in ("init_task", "linux_banner", "init_top_pgt", "schedule"):
            self.assertEqual(prog.symbol(name).address, syms[name][0], name)
        self.assertEqual(prog.symbol(syms["schedule"][0] + 5).name, "schedule")

    # -- 1000 random kernel addresses, read four ways --

    def _kdumpfile_path(self) -> str:
        """What libkdumpfile reads: the dump, or for a guest of a host dump (libkdumpfile does
        not enumerate domains: its direct-map shortcut goes through dom0's p2m) the guest
        written out by p2m-extract as an xl dump-core, which libkdumpfile reads as such."""
        if self.domain is None:
            return self.path
        support.require_executable(support.EXTRACT, "p2m-extract")
        d = tempfile.mkdtemp(prefix="p2mnote-extract-")
        self.addCleanup(shutil.rmtree, d, True)
        out = os.path.join(d, f"dom{self.domain}.xcore")
        r = subprocess.run([support.EXTRACT, self.path, "--domain", str(self.domain), "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def _addresses(self) -> List[Tuple[int, str]]:
        from drgn.helpers.linux.pid import for_each_task

        rng = random.Random(20261201)
        syms = _read_system_map(self.system_map)
        stext, end = syms["_stext"][0], syms["_end"][0]
        image = sorted(
            a for a, t in syms.values() if t in "tTrRdDbB" and stext <= a < end - READ
        )
        mods = _modules_truth(os.path.join(self.gt, "modules.txt"))
        if not self.prog.type("struct module").has_member("core_layout"):
            # Linux 6.4 and later: /proc/modules' size is the sum of the module's memory regions,
            # which lie apart from each other; sample inside the regions (those not freed).
            from drgn.helpers.linux.module import for_each_module

            mods = [
                (m.name.string_().decode(), r.base.value_(), r.size.value_())
                for m in for_each_module(self.prog)
                for r in m.mem
                if r.base.value_() and r.size.value_() > READ
            ]
        # A copy that lost frames of the task list (lost_kinds) cannot be walked for samples.
        lost = "task_struct" in self.lost_kinds()
        tasks = [] if lost else [t.value_() for t in for_each_task(self.prog)]
        task_size = self.prog.type("struct task_struct").size
        out: Set[Tuple[int, str]] = set()
        while len(out) < N_ADDRESSES:
            r = rng.random()
            if r < 0.4:
                out.add((rng.choice(image), "symbol"))
            elif r < 0.7 or lost:
                _, base, size = rng.choice(mods)
                out.add((base + rng.randrange(0, size - READ), "module"))
            else:
                out.add((rng.choice(tasks) + rng.randrange(0, task_size - READ), "task_struct"))
        return sorted(out)

    def _read_analyze(self, addrs: List[int]) -> Dict[int, bytes]:
        support.require_executable(support.ANALYZE, "p2m-analyze")
        script = "".join(f"rd {a:x} {READ // 8}\n" for a in addrs)
        r = subprocess.run(
            [support.ANALYZE, self.path, "--system-map", self.system_map, "--json", "-"]
            + ([] if self.domain is None else ["--domain", str(self.domain)]),
            input=script,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
        )
        self.assertGreaterEqual(r.returncode, 0, f"p2m-analyze killed by signal {-r.returncode}")
        out = {}
        for line in r.stdout.splitlines():
            env = json.loads(line)
            res = env["result"]
            out[int(res["address"], 16)] = bytes.fromhex(res["hex"])
        # Failed reads leave no stdout line; their errors are JSON lines on stderr.
        errors = [l for l in r.stderr.splitlines() if l.startswith("{")]
        self.assertEqual(len(out) + len(errors), len(addrs), r.stderr[-2000:])
        return out

    def test_random_addresses_read_the_same_four_ways(self) -> None:
        import drgn

        try:
            import kdumpfile  # noqa: F401
        except ImportError as e:
            support.skip_loudly(f"python3-libkdumpfile is not importable ({e})")
        addrs = self._addresses()
        syms = _read_system_map(self.system_map)
        kd = kdumpfile_context(self._kdumpfile_path(), syms["init_top_pgt"][0])
        via_cli = self._read_analyze([a for a, _ in addrs])
        results = []
        for a, what in addrs:
            row = {}
            try:
                row["drgn"] = self.prog.read(a, READ)
            except drgn.FaultError as e:
                row["drgn"] = None
            try:
                row["lib"] = self.lib.read(a, READ)
            except p2mnote.AddressError:
                row["lib"] = None
            row["cli"] = via_cli.get(a)
            try:
                row["kdumpfile"] = bytes(kd.read(kdumpfile.KDUMP_KVADDR, a, READ))
            except Exception:  # kdumpfile.exceptions.*: excluded page, no translation
                row["kdumpfile"] = None
            results.append((a, what, row))
        disagree = [
            (hex(a), what, {k: (v.hex()[:32] if v else None) for k, v in row.items()})
            for a, what, row in results
            if len({v for v in row.values()}) != 1
        ]
        self.assertEqual(disagree[:10], [], f"{len(disagree)} of {len(results)} addresses differ")
        failed = [(hex(a), what) for a, what, row in results if row["lib"] is None]
        if self.unreadable_in_init_only:
            init = (syms["__init_begin"][0], syms["__init_end"][0])
            outside = [(a, w) for a, w in failed if not init[0] <= int(a, 16) < init[1] and w not in self.lost_kinds()]
            self.assertEqual(outside, [], "unreadable outside the freed init sections")
        else:
            self.assertEqual(failed, [], "unreadable addresses")
        print(
            f"\n{self.dump}: {len(results)} addresses, {len(results) - len(failed)} read the same four ways, "
            f"{len(failed)} unreadable by all four",
            file=sys.stderr,
        )

    def lost_kinds(self) -> Set[str]:
        """Kinds of sampled address a dump level may have dropped (all four readers then agree)."""
        return set()

    # Whether addresses may be unreadable (by all four readers alike) inside the kernel's freed
    # [__init_begin, __init_end): a makedumpfile dump level that drops free pages drops those.
    unreadable_in_init_only = False


class RealDom0Vmcore(_RealDump, unittest.TestCase):
    dump = "dom0.vmcore"
    truth = "ground-truth"
    panicked = True
    after_tail_first = ["sysrq: Trigger a crash", "Kernel panic - not syncing: sysrq triggered crash"]
    after_tail_last = "Kernel Offset: disabled"


class RealDom0KdumpCompressedD31(_RealDump, unittest.TestCase):
    dump = "dom0.kdump-c-d31"
    truth = "ground-truth"
    panicked = True
    after_tail_first = RealDom0Vmcore.after_tail_first
    after_tail_last = RealDom0Vmcore.after_tail_last
    # Dump level 31 drops free, cache and zero pages: the freed init text and data are free
    # pages; task structs, modules and the rest of the image stay.
    unreadable_in_init_only = True
    user_pages_excluded = True

    def _tasks_lost(self) -> bool:
        """Linux 6.10 and later (Debian 13's 6.12): makedumpfile's level-31 copy of the Xen dom0
        (made with -x vmlinux: a dom0 kdump carries Xen's VMCOREINFO, not the kernel's) lacks
        frames that hold live task_structs, with 1.7.2 and 1.7.6 alike; what walks the tasks
        reads pages that are not in the file."""
        with open(os.path.join(self.gt, "uname.txt"), encoding="utf-8") as f:
            release = f.read().split()[2]
        major, minor = (int(x) for x in release.split(".")[:2])
        return (major, minor) >= (6, 10)

    def lost_kinds(self) -> Set[str]:
        return {"task_struct"} if self._tasks_lost() else set()

    def _skip_if_tasks_lost(self) -> None:
        if self._tasks_lost():
            support.skip_loudly(f"{self.dump}: makedumpfile's level 31 dropped frames of live task_structs on this kernel (6.10 and later)")

    def test_tasks_equal_proc(self) -> None:
        self._skip_if_tasks_lost()
        super().test_tasks_equal_proc()

    def test_every_tasks_backtrace(self) -> None:
        self._skip_if_tasks_lost()
        super().test_every_tasks_backtrace()

    def test_kernel_vmcoreinfo_and_mm_helpers(self) -> None:
        self._skip_if_tasks_lost()
        super().test_kernel_vmcoreinfo_and_mm_helpers()

    def test_same_bytes_as_the_elf_original(self) -> None:
        support.require_real("dom0.vmcore")
        with p2mnote.open(os.path.join(self.dir, "dom0.vmcore"), system_map=self.system_map) as elf:
            a = self.lib.symbol("init_task")
            self.assertEqual(elf.read(a, 4096), self.lib.read(a, 4096))
            self.assertEqual(elf.p2m_entries(0, 1 << 16), self.lib.p2m_entries(0, 1 << 16))


class RealDomUXLDumpCore(_RealDump, unittest.TestCase):
    dump = "domU.xcore"
    truth = "ground-truth/domU"
    after_tail_first: List[str] = []
    after_tail_last = None


class RealHostDom0(_RealDump, unittest.TestCase):
    """The crashed host with two domUs running (Tools/real-dump stage 4): dom0, domain 0."""
    dump = "host.vmcore"
    truth = "ground-truth/host"
    domain = 0
    panicked = True
    after_tail_first = RealDom0Vmcore.after_tail_first
    after_tail_last = RealDom0Vmcore.after_tail_last


class RealHostDomU1(_RealDump, unittest.TestCase):
    """domu1 of the crashed host, ballooned to 160 MiB: found in Xen's tables, read by drgn."""
    dump = "host.vmcore"
    truth = "ground-truth/host/domu1"
    domain = 1


class RealHostDomU2(_RealDump, unittest.TestCase):
    dump = "host.vmcore"
    truth = "ground-truth/host/domu2"
    domain = 2


class RealCrashSession(unittest.TestCase):
    """`p2mnote crash DUMP VMLINUX` with crash's first commands piped in, as a crash user types
    them, judged against what the live system recorded."""

    dump = "dom0.vmcore"
    truth = "ground-truth"

    def test_sys_ps_mod_log_bt_kmem(self) -> None:
        support.require_library()
        support.require_drgn()
        support.require_real(self.dump, "vmlinux", self.truth)
        d = support.REAL_DIR
        gt = os.path.join(d, self.truth)
        env = dict(os.environ, PYTHONPATH=os.path.join(support.REPO, "python"))
        r = subprocess.run(
            [sys.executable, "-m", "p2mnote", "crash", os.path.join(d, self.dump), os.path.join(d, "vmlinux")],
            input="sys\nps -G\nmod\nlog\nbt\nkmem -i\n", capture_output=True, text=True, env=env, timeout=600,
        )
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        out = r.stdout
        # ps -G (thread-group leaders: the recorder lists /proc's processes): every task the live
        # system had (pid, parent, comm), by the one comparison rule.
        recorded = support.recorded_tasks(gt)
        rows: Dict[int, Tuple[int, str, bool]] = {}
        for line in out.splitlines():
            f = line.lstrip(">").split()
            if len(f) >= 9 and f[0].isdigit() and f[1].isdigit() and len(f[3]) == 16 and f[0] != "0":
                pid, ppid, comm = int(f[0]), int(f[1]), " ".join(f[8:]).strip("[]")
                want = recorded.get(pid, (None, ""))[1]
                if want.startswith(comm):  # task->comm is /proc's name cut to 15 bytes
                    comm = want
                rows[pid] = (ppid, comm, support.is_workqueue_worker(comm, ppid))
        errors, _ = support.compare_tasks(recorded, rows)
        self.assertEqual(errors, [], f"{len(rows)} tasks in ps")
        # mod: the modules of /proc/modules.
        names = {n for n, _, _ in _modules_truth(os.path.join(gt, "modules.txt"))}
        mod_lines = [l.split() for l in out.splitlines() if len(l.split()) >= 4 and l.split()[1] in names]
        self.assertEqual({l[1] for l in mod_lines}, names)
        # log: the lines recorded last before the panic are in it.
        for line in support.recorded_dmesg_tail(gt)[-5:]:
            self.assertIn(line, out)
        # bt: the panicking task's trace, through sysrq.
        self.assertIn(" panic at ", out)
        self.assertIn(" sysrq_handle_crash at ", out)
        self.assertIn("TOTAL MEM", out)


if __name__ == "__main__":
    unittest.main()

