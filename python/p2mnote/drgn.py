"""drgn over a Xen PV dump, through libp2mnote.

drgn reads a Linux kernel by walking its page tables in "physical" memory, which under Xen PV
holds machine frames, so ``drgn -c dom0.vmcore`` cannot read a PV guest. :func:`program` builds a
drgn Linux-kernel program (drgn >= 0.3.0, ``Program.set_linux_kernel_custom``) whose memory is
the library's:

* one virtual segment over the kernel half of the address space
  (0xffff800000000000 .. 2^64), read with the library's KVIRT reads (page walks in machine memory);
  it is added after ``set_linux_kernel_custom``, so it takes precedence over drgn's own
  page-table reader, which stays in charge of the lower (user) half only;
* one physical segment over [0, nr_pfns * 4096), read with PPHYS reads (through the p2m);
* a VMCOREINFO: the dump's own note if it has one; else the text the guest kernel keeps in its
  memory (``vmcoreinfo_data``: complete, with LENGTH(mem_section) that drgn's mm helpers need);
  else the one the library makes (OSRELEASE, PAGESIZE, KERNELOFFSET, SYMBOL(swapper_pg_dir),
  BUILD-ID, so drgn matches the vmlinux).

drgn's reads are small (a pointer, a list_head, a task_struct member); each one is served from a
small LRU cache of whole pages filled by one ctypes call per page.

Example::

    import p2mnote.drgn
    from drgn.helpers.linux.pid import for_each_task
    prog = p2mnote.drgn.program("dom0.vmcore", vmlinux="vmlinux")
    for task in for_each_task(prog):
        print(task.pid.value_(), task.comm.string_().decode())

User-space addresses: drgn's own walker reads the guest's page tables as if they held
pseudo-physical frames (under PV they hold machine frames); :mod:`p2mnote.user` replaces drgn's
user-memory helpers (access_process_vm, access_remote_vm, follow_phys and what uses them:
cmdline, environ, crash's ``rd -u`` and ``ps -a``) for these programs with a walk in machine
memory. Each guest CPU's registers at the crash reach drgn as NT_PRSTATUS notes of a small core
file (:func:`registers_core`), so ``crashed_thread().stack_trace()`` and crash's ``bt`` work.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections import OrderedDict
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import drgn as _drgn

import p2mnote as _p2mnote
from . import _lib

__all__ = ["program", "PageCache", "KERNEL_HALF_START", "attach"]

KERNEL_HALF_START = 0xFFFF800000000000
PAGE_SIZE = 4096
PAGE_MASK = ~(PAGE_SIZE - 1)

PathLike = Union[str, bytes, "os.PathLike[str]"]


class PageCache:
    """An LRU cache of whole pages of one address space of a :class:`p2mnote.Dump`, shaped as a
    drgn memory-segment read function: ``cache(address, count, offset, physical) -> bytes``.

    Each page is fetched by one p2mnote_read call of ``PAGE_SIZE`` bytes; a page that fails is
    remembered as failed (the dump does not change), so drgn probing a bad pointer again costs
    no library call. Reads of ``direct_threshold`` bytes or more bypass the cache and go to the
    library in one call."""

    def __init__(
        self,
        dump: "_p2mnote.Dump",
        space: str,
        capacity: int = 8192,
        direct_threshold: int = 4 * PAGE_SIZE,
    ):
        self.dump = dump
        self.space = _p2mnote.space_code(space)
        self.capacity = capacity
        self.direct_threshold = direct_threshold
        self._pages: "OrderedDict[int, Union[bytes, _drgn.FaultError]]" = OrderedDict()
        self._buf = ctypes.create_string_buffer(PAGE_SIZE)
        self._done = ctypes.c_size_t()
        self._fn = _lib.lib().p2mnote_read
        self.hits = 0
        self.misses = 0
        self.library_calls = 0

    def clear(self) -> None:
        self._pages.clear()

    def _fetch(self, page: int) -> Union[bytes, "_drgn.FaultError"]:
        """One page from the library (or the FaultError it gives)."""
        d = self.dump
        h = d._enter()
        try:
            self.library_calls += 1
            st = self._fn(h, self.space, page, self._buf, PAGE_SIZE, ctypes.byref(self._done))
            if st != _lib.OK:
                err = _p2mnote._error(st, "p2mnote_read")
                return _drgn.FaultError(err.message, page)
        finally:
            d._leave()
        return self._buf.raw

    def page(self, page: int, address: Optional[int] = None) -> bytes:
        """The bytes of the page at ``page``; FaultError (at ``address``, default the page) if
        the library cannot read it."""
        pages = self._pages
        data = pages.get(page)
        if data is not None:
            self.hits += 1
            pages.move_to_end(page)
        else:
            self.misses += 1
            data = self._fetch(page)
            pages[page] = data
            if len(pages) > self.capacity:
                pages.popitem(last=False)
        if isinstance(data, _drgn.FaultError):
            raise _drgn.FaultError(data.message, page if address is None else address)
        return data

    def _direct(self, address: int, count: int) -> bytes:
        buf = ctypes.create_string_buffer(count)
        done = ctypes.c_size_t()
        d = self.dump
        h = d._enter()
        try:
            self.library_calls += 1
            st = self._fn(h, self.space, address, buf, count, ctypes.byref(done))
            if st != _lib.OK:
                err = _p2mnote._error(st, "p2mnote_read")
                # The page that failed: the library copied every page before it.
                bad = address + done.value
                raise _drgn.FaultError(err.message, bad)
        finally:
            d._leave()
        return buf.raw

    def __call__(self, address: int, count: int, offset: int = 0, physical: bool = False) -> bytes:
        page = address & PAGE_MASK
        off = address - page
        if off + count <= PAGE_SIZE:  # the common case: within one page
            data = self.page(page, address)
            if off == 0 and count == PAGE_SIZE:
                return data
            return data[off : off + count]
        if count >= self.direct_threshold:
            return self._direct(address, count)
        out = bytearray()
        first = True
        while count > 0:
            n = min(count, PAGE_SIZE - off)
            out += self.page(page, address if first else page)[off : off + n]
            first = False
            count -= n
            page += PAGE_SIZE
            off = 0
        return bytes(out)


def _platform() -> "_drgn.Platform":
    host = getattr(_drgn, "host_platform", None)
    if host is not None and host.arch == _drgn.Architecture.X86_64:
        return host
    return _drgn.Platform(
        _drgn.Architecture.X86_64, _drgn.PlatformFlags.IS_64_BIT | _drgn.PlatformFlags.IS_LITTLE_ENDIAN
    )


def _fields(text: bytes) -> dict:
    out = {}
    for line in text.split(b"\n"):
        k, eq, v = line.partition(b"=")
        if eq:
            out[k] = v
    return out


def choose_vmcoreinfo(dump: "_p2mnote.Dump") -> "tuple[bytes, str]":
    """(VMCOREINFO for drgn, where it came from): the library's choice (p2mnote_vmcoreinfo): the
    dump's own note ("note"); else the text the kernel keeps in its memory ("kernel memory",
    complete with LENGTH(mem_section), which drgn's mm helpers need); else one the library made
    ("synthesised": OSRELEASE, PAGESIZE, SYMBOL(swapper_pg_dir), BUILD-ID, ...)."""
    v = dump.vmcoreinfo()
    return v.text, v.origin


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    name += b"\0"

    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)

    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def _prstatus(pid: int, values: "tuple[int, ...]") -> bytes:
    """An x86-64 struct elf_prstatus (336 bytes): pr_pid at 32, pr_reg (27 words) at 112."""
    b = bytearray(336)
    struct.pack_into("<I", b, 32, pid)
    struct.pack_into("<27Q", b, 112, *values)
    return bytes(b)


def registers_core(vmcoreinfo: bytes, registers: "list[_p2mnote.Registers]") -> bytes:
    """A small ELF core (ET_CORE, x86-64, one PT_NOTE, no memory) holding the guest's VMCOREINFO
    and one NT_PRSTATUS per guest CPU with pr_pid = cpu + 1, which is how drgn finds a running
    task's registers in a kernel core (drgn_program_find_prstatus). drgn 0.3.0 has no other way
    to be given them: ``set_linux_kernel_custom`` programs have no notes, so the crashed
    thread's stack trace and ``bt`` fail with "registers for CPU N were not saved"."""
    # CRASHTIME would make drgn read the guest's crash_notes instead (empty under Xen).
    vi = b"\n".join(l for l in vmcoreinfo.split(b"\n") if not l.startswith(b"CRASHTIME="))
    notes = _note(b"VMCOREINFO", 0, vi)
    for r in registers:
        notes += _note(b"CORE", 1, _prstatus(r.cpu + 1, r.values))
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 120, 0, 0, len(notes), 0, 4)
    return ehdr + phdr + notes


def attach(
    prog: "_drgn.Program",
    dump: "_p2mnote.Dump",
    vmcoreinfo: Optional[bytes] = None,
    cache_pages: int = 8192,
    registers: bool = True,
) -> "_drgn.Program":
    """Make ``prog`` (a new drgn Program with an x86_64 platform) a Linux kernel program over
    ``dump``'s memory, without loading debug info. ``vmcoreinfo`` defaults to
    :func:`choose_vmcoreinfo`'s. With ``registers`` (and the dump holding them:
    :meth:`p2mnote.Dump.registers`), each guest CPU's registers at the crash are given to drgn,
    so that ``prog.crashed_thread().stack_trace()`` and crash's ``bt`` work. Returns ``prog``."""
    source = "given"
    if vmcoreinfo is None:
        vmcoreinfo, source = choose_vmcoreinfo(dump)
    # User-half reads walk the process's page tables in machine memory (p2mnote.user).
    from p2mnote import user as _user

    _user.install_drgn_helpers()
    regs: "list[_p2mnote.Registers]" = []
    if registers:
        try:
            regs = [r for r in dump.registers() if r.cpu is not None]
        except _p2mnote.P2MNoteError:
            regs = []
    # Must come first: both refuse a program whose memory is initialised ("program memory was
    # already initialized"), and both add drgn's page-table reader over the whole virtual space,
    # which the kernel-half segment below then overrides (later segments win in drgn's reader).
    if regs:
        # drgn shows the core's path as the dump's (crash's DUMPFILE): name it after the dump.
        fd = os.memfd_create(f"{os.fsdecode(dump.path)} (registers from Xen's stacks)", os.MFD_CLOEXEC)
        core = registers_core(vmcoreinfo, regs)
        view = memoryview(core)
        while view:
            view = view[os.write(fd, view) :]
        prog.set_core_dump(fd)  # drgn owns fd from here
    else:
        prog.set_linux_kernel_custom(vmcoreinfo, False)
    nr_pfns = dump.p2m().nr_pfns
    kvirt = PageCache(dump, "kvirt", capacity=cache_pages)
    pphys = PageCache(dump, "pphys", capacity=cache_pages)
    prog.add_memory_segment(KERNEL_HALF_START, (1 << 64) - KERNEL_HALF_START, kvirt, False)
    if nr_pfns:
        prog.add_memory_segment(0, nr_pfns * PAGE_SIZE, pphys, True)
    # Keep the dump (and the caches, for statistics) reachable from the program.
    prog.config["p2mnote.dump"] = dump
    prog.config["p2mnote.kvirt_cache"] = kvirt
    prog.config["p2mnote.pphys_cache"] = pphys
    prog.config["p2mnote.vmcoreinfo_source"] = source
    prog.config["p2mnote.registers"] = regs
    return prog


def program(
    dump: Union[PathLike, "_p2mnote.Dump"],
    vmlinux: Optional[PathLike] = None,
    system_map: Optional[PathLike] = None,
    domain: Optional[int] = None,
    cr3: Optional[int] = None,
    p2m_mfn: Optional[int] = None,
    use_note: bool = True,
    debug_info: Optional[Iterable[PathLike]] = None,
    load_default_debug_info: bool = False,
    cache_pages: int = 8192,
    kallsyms: bool = True,
) -> "_drgn.Program":
    """A drgn Linux-kernel Program over a Xen PV dump.

    :param dump: a path (opened with :func:`p2mnote.open` and the options below) or an open
        :class:`p2mnote.Dump`.
    :param vmlinux: the kernel's debug vmlinux: passed to the library (symbols, build-ID check:
        :class:`p2mnote.MismatchError` if it is another kernel) and loaded as drgn's debug info.
    :param system_map, domain, cr3, p2m_mfn, use_note: as for :func:`p2mnote.open`.
    :param debug_info: more files for drgn (e.g. kernel modules' .ko with debug info).
    :param load_default_debug_info: also let drgn search its default places.
    :param cache_pages: pages kept per address space (4 KiB each).
    :param kallsyms: without a vmlinux, give drgn the kernel's own symbol table (kallsyms,
        located through the SYMBOL(kallsyms_*) lines of the library's VMCOREINFO), so that
        ``prog.symbol()`` works without debug info. Skipped quietly when unavailable.

    Without a vmlinux (and no ``debug_info``) no debug info is loaded; call
    ``prog.load_debug_info([...])`` yourself.
    """
    if isinstance(dump, _p2mnote.Dump):
        d = dump
    else:
        d = _p2mnote.open(
            dump,
            system_map=system_map,
            vmlinux=vmlinux,
            domain=domain,
            cr3=cr3,
            p2m_mfn=p2m_mfn,
            use_note=use_note,
        )
    prog = _drgn.Program(_platform())
    attach(prog, d, cache_pages=cache_pages)
    paths = []
    if vmlinux is not None:
        paths.append(os.fsdecode(vmlinux))
    if debug_info:
        paths.extend(os.fsdecode(p) for p in debug_info)
    if vmlinux is None and kallsyms:
        try:
            from drgn.helpers.linux.kallsyms import load_vmlinux_kallsyms

            index = load_vmlinux_kallsyms(prog)
            prog.register_symbol_finder("p2mnote-kallsyms", index, enable_index=0)
        except Exception:  # no kallsyms symbols in the VMCOREINFO, an old drgn, unreadable tables
            pass
    if paths or load_default_debug_info:
        prog.load_debug_info(paths, default=load_default_debug_info)
        if vmlinux is not None:
            main = prog.main_module()
            if main.debug_file_path is None:
                raise _p2mnote.MismatchError(
                    f"{os.fsdecode(vmlinux)}: drgn did not take it as the debug info of the "
                    f"dump's kernel (kernel build ID "
                    f"{main.build_id.hex() if main.build_id else 'unknown'})"
                )
    return prog
