"""Read the memory of a Xen PV Linux guest from its crash dump, through libp2mnote.

A PV guest's page tables hold machine frames and its pfn->mfn table (the p2m) lives in vmalloc
space. libp2mnote walks page tables in machine memory only and maps pseudo-physical addresses
through the dump's p2mnote note (else the tables the guest left in memory). This package is a
thin ctypes layer over it::

    import p2mnote
    with p2mnote.open("dom0.vmcore", system_map="System.map") as d:
        print(d.banner())
        data = d.read(d.symbol("linux_banner"), 64)              # kernel virtual
        page = d.read(0x9f000, 4096, space="pphys")              # pseudo-physical
        print(d.vtop(d.symbol("init_task")))

For drgn, see :mod:`p2mnote.drgn`. Failures raise :class:`P2MNoteError` subclasses whose message
is the library's (it names the file, the offset or the address).
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

from . import _lib
from ._lib import LibraryNotFoundError

__all__ = [
    "open",
    "version",
    "Dump",
    "Info",
    "Walk",
    "WalkStep",
    "P2M",
    "P2MEntry",
    "P2MNoteError",
    "ArgumentError",
    "DumpIOError",
    "FormatError",
    "NoP2MError",
    "NoSymbolError",
    "AddressError",
    "UnmappedError",
    "NotInDumpError",
    "MismatchError",
    "NoDomainError",
    "RangeError",
    "InternalError",
    "LibraryNotFoundError",
    "KVIRT",
    "PPHYS",
    "MACHINE",
]

# The package's version: the same as pyproject.toml's and the library's (p2mnote_version(),
# the tools' --version); test_cli checks that the three agree.
__version__ = "0.3.0"

KVIRT = "kvirt"
PPHYS = "pphys"
MACHINE = "machine"

_SPACES = {
    "kvirt": _lib.KVIRT,
    "kvaddr": _lib.KVIRT,
    "virtual": _lib.KVIRT,
    "pphys": _lib.PPHYS,
    "physical": _lib.PPHYS,
    "machine": _lib.MACHINE,
    _lib.KVIRT: _lib.KVIRT,
    _lib.PPHYS: _lib.PPHYS,
    _lib.MACHINE: _lib.MACHINE,
}

_KINDS = {
    _lib.ENTRY_MFN: "mfn",
    _lib.ENTRY_INVALID: "invalid",
    _lib.ENTRY_IDENTITY: "identity",
    _lib.ENTRY_FOREIGN: "foreign",
}


# --------------------------------------------------------------------------------------------
# Errors


class P2MNoteError(Exception):
    """A libp2mnote call failed. ``status`` is the p2mnote_status, ``message`` the library's
    p2mnote_last_error() text (it names the file, offset or address, and what was expected)."""

    status: Optional[int] = None

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    @property
    def status_name(self) -> str:
        return _lib.STATUS_NAMES.get(self.status, f"status {self.status}")

    def __str__(self) -> str:
        return self.message


class ArgumentError(P2MNoteError, ValueError):
    """P2MNOTE_ERR_ARGUMENT: a NULL pointer, an unknown flag, a bad struct_size."""

    status = _lib.ERR_ARGUMENT


class DumpIOError(P2MNoteError, OSError):
    """P2MNOTE_ERR_IO: the file cannot be opened or read (missing, a FIFO, a directory, EIO)."""

    status = _lib.ERR_IO

    def __str__(self) -> str:  # OSError's __str__ would print "[Errno ...]"-less args anyway
        return self.message


class FormatError(P2MNoteError):
    """P2MNOTE_ERR_FORMAT: not a dump the library reads, or a malformed one."""

    status = _lib.ERR_FORMAT


class NoP2MError(P2MNoteError):
    """P2MNOTE_ERR_NO_P2M: no p2m source (no note, no table the guest left readable)."""

    status = _lib.ERR_NO_P2M


class NoSymbolError(P2MNoteError, LookupError):
    """P2MNOTE_ERR_NO_SYMBOL: a needed symbol is unknown (pass a System.map or vmlinux)."""

    status = _lib.ERR_NO_SYMBOL


class AddressError(P2MNoteError):
    """An address that cannot be read: :class:`UnmappedError` or :class:`NotInDumpError`.
    ``address`` is the address the read started at, ``done`` the bytes read before the page
    that failed, ``data`` those bytes (for :meth:`Dump.read`)."""

    address: Optional[int] = None
    done: int = 0
    data: bytes = b""


class UnmappedError(AddressError):
    """P2MNOTE_ERR_UNMAPPED: the address does not translate (not present, INVALID p2m entry)."""

    status = _lib.ERR_UNMAPPED


class NotInDumpError(AddressError):
    """P2MNOTE_ERR_NOT_IN_DUMP: the address translates but the dump does not hold the page."""

    status = _lib.ERR_NOT_IN_DUMP


class MismatchError(P2MNoteError):
    """P2MNOTE_ERR_MISMATCH: the vmlinux is not the dump's kernel (build ID, banner)."""

    status = _lib.ERR_MISMATCH


class NoDomainError(P2MNoteError, LookupError):
    """P2MNOTE_ERR_NO_DOMAIN: the domain asked for is not in the dump."""

    status = _lib.ERR_NO_DOMAIN


class RangeError(P2MNoteError, IndexError):
    """P2MNOTE_ERR_RANGE: beyond a table (a pfn past the p2m), or a buffer too small."""

    status = _lib.ERR_RANGE


class InternalError(P2MNoteError):
    """P2MNOTE_ERR_INTERNAL: a defect of the library; the message says what."""

    status = _lib.ERR_INTERNAL


_ERRORS = {
    cls.status: cls
    for cls in (
        ArgumentError,
        DumpIOError,
        FormatError,
        NoP2MError,
        NoSymbolError,
        UnmappedError,
        NotInDumpError,
        MismatchError,
        NoDomainError,
        RangeError,
        InternalError,
    )
}


def _error(status: int, context: str = "") -> P2MNoteError:
    """The exception for a failed call; must run on the thread that made the call, before it
    calls into the library again (p2mnote_last_error is per thread)."""
    message = _lib.last_error()
    if not message:
        message = f"{context or 'libp2mnote'}: {_lib.STATUS_NAMES.get(status, status)}"
    cls = _ERRORS.get(status)
    if cls is None:
        return P2MNoteError(message, status)
    return cls(message)


def _check(status: int, context: str = "") -> None:
    if status != _lib.OK:
        raise _error(status, context)


def _text(b: Optional[bytes]) -> str:
    return b.decode("utf-8", "replace") if b is not None else ""


def _path_arg(p: Union[str, bytes, os.PathLike, None]) -> Optional[bytes]:
    if p is None:
        return None
    return os.fsencode(p)


def space_code(space: Union[str, int]) -> int:
    """The p2mnote_space of "kvirt" / "pphys" / "machine" (or of the integer itself)."""
    try:
        return _SPACES[space.lower() if isinstance(space, str) else space]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown address space {space!r} (kvirt, pphys or machine)"
        ) from None


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Info:
    """struct p2mnote_info. ``domain`` is None for the dump's own guest (the library's -1)."""

    page_size: int
    path: str
    container: str
    machine_bytes: int
    kernel_offset: int
    symbol_count: int
    domain: Optional[int]

    def asdict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class WalkStep:
    level: int
    index: int
    table_mfn: int
    entry: int


@dataclass(frozen=True)
class Walk:
    """A page walk (p2mnote_vtop). ``pfn`` is None when the p2m does not name exactly one pfn
    for the machine frame."""

    vaddr: int
    maddr: int
    page_size: int
    pfn: Optional[int]
    steps: List[WalkStep] = field(default_factory=list)

    @property
    def mfn(self) -> int:
        return self.maddr >> 12

    @property
    def paddr(self) -> Optional[int]:
        """The pseudo-physical address (pfn << 12 plus the offset in the page), if known."""
        if self.pfn is None:
            return None
        return (self.pfn << 12) | (self.maddr & 0xFFF)


class P2M(NamedTuple):
    nr_pfns: int
    source: str
    location: str


class P2MEntry(NamedTuple):
    """``frame``: the mfn for "mfn" and "foreign", the pfn for "identity", None for "invalid"."""

    frame: Optional[int]
    kind: str


class VmcoreInfo(NamedTuple):
    text: bytes
    #: False only for the dump's own VMCOREINFO note of the guest.
    synthesised: bool
    #: "note" (the dump's own), "kernel memory" (the text the kernel prepared, vmcoreinfo_data)
    #: or "synthesised" (made by the library from the dump).
    origin: str


class Root(NamedTuple):
    maddr: int
    how: str


# --------------------------------------------------------------------------------------------
# The dump


# x86-64 struct user_regs_struct, the order of an NT_PRSTATUS's pr_reg.
REGISTER_NAMES = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
    "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds",
    "es", "fs", "gs",
)


@dataclass(frozen=True)
class Registers:
    """One guest CPU's registers at the crash (p2mnote_registers)."""

    cpu: Optional[int]  # the guest's CPU number, None when it could not be told
    pcpu: Optional[int]  # the physical CPU whose Xen stack held them
    running: bool  # the vCPU was on a physical CPU at the crash
    source: str  # where they came from
    values: Tuple[int, ...]  # REGISTER_NAMES order

    def __getitem__(self, name: str) -> int:
        return self.values[REGISTER_NAMES.index(name)]


class Dump:
    """One open dump (and one guest in it). Use :func:`open`. A context manager; :meth:`close`
    frees the handle (calls in flight on other threads finish first). Calls on one handle are
    serialised by the library, so a Dump may be shared between threads."""

    def __init__(self, handle: int, path: str):
        self._h: Optional[int] = handle
        self._path = path
        self._cv = threading.Condition(threading.Lock())
        self._active = 0
        self._lib = _lib.lib()

    # -- handle bookkeeping: close() waits for calls in flight, so none uses a freed handle --

    def _enter(self) -> int:
        with self._cv:
            if self._h is None:
                raise ValueError(f"{self._path}: the dump is closed")
            self._active += 1
            return self._h

    def _leave(self) -> None:
        with self._cv:
            self._active -= 1
            if self._active == 0:
                self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            h, self._h = self._h, None
            while self._active:
                self._cv.wait()
        if h is not None:
            self._lib.p2mnote_close(h)

    @property
    def closed(self) -> bool:
        return self._h is None

    def __enter__(self) -> "Dump":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._h is None else "open"
        return f"<p2mnote.Dump {self._path!r} ({state})>"

    @property
    def path(self) -> str:
        return self._path

    # -- the calls --

    @property
    def info(self) -> Info:
        out = _lib.Info()
        h = self._enter()
        try:
            _check(self._lib.p2mnote_get_info(h, ctypes.byref(out)), "p2mnote_get_info")
            return Info(
                page_size=out.page_size,
                path=os.fsdecode(out.path) if out.path is not None else self._path,
                container=_text(out.container),
                machine_bytes=out.machine_bytes,
                kernel_offset=out.kernel_offset,
                symbol_count=out.symbol_count,
                domain=None if out.domain < 0 else out.domain,
            )
        finally:
            self._leave()

    def root(self) -> Root:
        """(machine address of the top page table, how it was found)."""
        root = ctypes.c_uint64()
        how = ctypes.c_char_p()
        h = self._enter()
        try:
            _check(self._lib.p2mnote_root(h, ctypes.byref(root), ctypes.byref(how)))
            return Root(root.value, _text(how.value))
        finally:
            self._leave()

    def p2m(self) -> P2M:
        """(number of pfns, source name, where it was read). NoP2MError without a source."""
        n = ctypes.c_uint64()
        source = ctypes.c_char_p()
        location = ctypes.c_char_p()
        h = self._enter()
        try:
            _check(
                self._lib.p2mnote_p2m(
                    h, ctypes.byref(n), ctypes.byref(source), ctypes.byref(location)
                )
            )
            return P2M(n.value, _text(source.value), _text(location.value))
        finally:
            self._leave()

    def pfn_to_mfn(self, pfn: int) -> P2MEntry:
        """(frame, kind): kind is "mfn", "invalid", "identity" or "foreign"."""
        frame = ctypes.c_uint64()
        kind = ctypes.c_int()
        h = self._enter()
        try:
            _check(
                self._lib.p2mnote_pfn_to_mfn(h, pfn, ctypes.byref(frame), ctypes.byref(kind))
            )
        finally:
            self._leave()
        k = _KINDS.get(kind.value, f"kind {kind.value}")
        return P2MEntry(None if kind.value == _lib.ENTRY_INVALID else frame.value, k)

    def p2m_entries(self, first: int, count: int) -> List[int]:
        """Up to ``count`` raw entries from pfn ``first`` (Spec section 3: INVALID all ones,
        bit 63 FOREIGN, bit 62 IDENTITY); fewer at the end of the table."""
        if count < 0:
            raise ValueError("count must be >= 0")
        out: List[int] = []
        chunk = 1 << 16
        while count > 0:
            n = min(count, chunk)
            buf = (ctypes.c_uint64 * n)()
            got = ctypes.c_size_t()
            h = self._enter()
            try:
                _check(self._lib.p2mnote_p2m_entries(h, first, buf, n, ctypes.byref(got)))
            finally:
                self._leave()
            out.extend(buf[: got.value])
            if got.value < n:
                break
            first += n
            count -= n
        return out

    def mfn_to_pfn(self, mfn: int) -> List[int]:
        """Every pfn whose p2m entry names ``mfn`` (empty: none; more than one: ambiguous)."""
        cap = 8
        while True:
            buf = (ctypes.c_uint64 * cap)()
            count = ctypes.c_size_t()
            h = self._enter()
            try:
                _check(self._lib.p2mnote_mfn_to_pfn(h, mfn, buf, cap, ctypes.byref(count)))
            finally:
                self._leave()
            if count.value <= cap:
                return list(buf[: count.value])
            cap = count.value

    def vtop(self, vaddr: int) -> Walk:
        """The page walk of a kernel virtual address (machine memory only)."""
        w = _lib.Walk()
        h = self._enter()
        try:
            _check(self._lib.p2mnote_vtop(h, vaddr, ctypes.byref(w)))
        finally:
            self._leave()
        steps = [
            WalkStep(s.level, s.index, s.table_mfn, s.entry)
            for s in w.steps[: min(w.nsteps, len(w.steps))]
        ]
        return Walk(
            vaddr=w.vaddr,
            maddr=w.maddr,
            page_size=w.page_size,
            pfn=None if w.pfn == _lib.UINT64_MAX else w.pfn,
            steps=steps,
        )

    def read_into(self, addr: int, buf: Any, space: Union[str, int] = KVIRT) -> int:
        """Read len(buf) bytes at ``addr`` into a writable buffer (bytearray, ctypes array,
        memoryview); returns the length. On failure raises, with ``done`` on the exception."""
        sp = space_code(space)
        n = len(buf) if not isinstance(buf, ctypes.Array) else ctypes.sizeof(buf)
        if n == 0:
            return 0
        if isinstance(buf, ctypes.Array):
            cbuf = buf
        else:
            cbuf = (ctypes.c_char * n).from_buffer(buf)
        done = ctypes.c_size_t()
        h = self._enter()
        try:
            st = self._lib.p2mnote_read(h, sp, addr, cbuf, n, ctypes.byref(done))
            if st != _lib.OK:
                err = _error(st, "p2mnote_read")
                err.address = addr  # type: ignore[attr-defined]
                err.done = done.value  # type: ignore[attr-defined]
                raise err
        finally:
            self._leave()
        return n

    def read(self, addr: int, size: int, space: Union[str, int] = KVIRT) -> bytes:
        """``size`` bytes at ``addr`` in ``space`` ("kvirt", "pphys" or "machine"). On failure
        raises the library's error; ``exc.done`` / ``exc.data`` hold what was read before the
        page that failed."""
        if size < 0:
            raise ValueError("size must be >= 0")
        if size == 0:
            return b""
        buf = ctypes.create_string_buffer(size)
        sp = space_code(space)
        done = ctypes.c_size_t()
        h = self._enter()
        try:
            st = self._lib.p2mnote_read(h, sp, addr, buf, size, ctypes.byref(done))
            if st != _lib.OK:
                err = _error(st, "p2mnote_read")
                err.address = addr  # type: ignore[attr-defined]
                err.done = done.value  # type: ignore[attr-defined]
                err.data = buf.raw[: done.value]  # type: ignore[attr-defined]
                raise err
        finally:
            self._leave()
        return buf.raw

    def read_u64(self, addr: int, space: Union[str, int] = KVIRT) -> int:
        return int.from_bytes(self.read(addr, 8, space), "little")

    def read_u32(self, addr: int, space: Union[str, int] = KVIRT) -> int:
        return int.from_bytes(self.read(addr, 4, space), "little")

    def read_cstring(self, addr: int, limit: int = 4096, space: Union[str, int] = KVIRT) -> bytes:
        """A NUL-terminated string at ``addr`` (without the NUL), at most ``limit`` bytes."""
        out = bytearray()
        while len(out) < limit:
            n = min(limit - len(out), 4096 - ((addr + len(out)) & 0xFFF))
            chunk = self.read(addr + len(out), n, space)
            i = chunk.find(b"\0")
            if i >= 0:
                out += chunk[:i]
                break
            out += chunk
        return bytes(out)

    def symbol(self, name: str) -> int:
        """A symbol's address (KASLR applied). NoSymbolError if unknown."""
        addr = ctypes.c_uint64()
        h = self._enter()
        try:
            _check(self._lib.p2mnote_symbol(h, name.encode(), ctypes.byref(addr)))
            return addr.value
        finally:
            self._leave()

    def banner(self) -> str:
        """linux_banner as read from the dump, without the trailing newline."""
        text = ctypes.c_char_p()
        h = self._enter()
        try:
            _check(self._lib.p2mnote_banner(h, ctypes.byref(text)))
            return _text(text.value)
        finally:
            self._leave()

    def vmcoreinfo(self) -> VmcoreInfo:
        """(VMCOREINFO text as bytes, synthesised, origin): the dump's own note, else the text the
        kernel prepared in its memory, else one the library made (p2mnote_vmcoreinfo)."""
        text = ctypes.c_char_p()
        n = ctypes.c_size_t()
        synth = ctypes.c_int()
        h = self._enter()
        try:
            _check(
                self._lib.p2mnote_vmcoreinfo(
                    h, ctypes.byref(text), ctypes.byref(n), ctypes.byref(synth)
                )
            )
            # Not text.value: that stops at a NUL and ignores len.
            raw = ctypes.string_at(text, n.value) if n.value else b""
            origin = {0: "note", 2: "kernel memory"}.get(synth.value, "synthesised")
            return VmcoreInfo(raw, synth.value != 0, origin)
        finally:
            self._leave()

    def kernel_vmcoreinfo(self) -> Optional[bytes]:
        """The VMCOREINFO text the guest kernel built at boot (``vmcoreinfo_data``, of
        ``vmcoreinfo_size`` bytes), read from the dump's memory; None when the symbols are
        unknown or the text is not there. Xen's kexec path and ``xl dump-core`` leave no
        VMCOREINFO note of the guest, but the kernel's own text is in its memory, complete
        (LENGTH(mem_section), NUMBER(SECTION_SIZE_BITS), the OFFSET/SIZE lines, ...)."""
        try:
            ptr = self.read_u64(self.symbol("vmcoreinfo_data"))
            size = self.read_u64(self.symbol("vmcoreinfo_size"))
        except P2MNoteError:
            return None
        if not ptr or not 0 < size <= 1 << 16:
            return None
        try:
            text = self.read(ptr, size)
        except P2MNoteError:
            return None
        if not text.startswith(b"OSRELEASE=") or b"\0" in text:
            return None
        return text

    def registers(self) -> List[Registers]:
        """The guest's registers at the crash, one set per guest CPU the dump holds (Xen's
        per-CPU stacks, an xl dump-core's vCPU contexts, struct vcpu); raises FormatError when
        the dump records none of this guest's."""
        count = ctypes.c_size_t()
        out: List[Registers] = []
        h = self._enter()
        try:
            _check(self._lib.p2mnote_registers(h, 0, None, ctypes.byref(count)))
            for i in range(count.value):
                r = _lib.Registers()
                _check(self._lib.p2mnote_registers(h, i, ctypes.byref(r), ctypes.byref(count)))
                out.append(
                    Registers(
                        None if r.cpu < 0 else r.cpu,
                        None if r.pcpu < 0 else r.pcpu,
                        bool(r.flags & 1),
                        _text(r.source),
                        tuple(r.regs),
                    )
                )
        finally:
            self._leave()
        return out

    def command(self, line: str) -> Any:
        """Run one p2m-analyze command line; returns its parsed JSON envelope
        {"dump", "command", "result"} (Spec/json.md)."""
        out = ctypes.c_void_p()
        h = self._enter()
        try:
            _check(self._lib.p2mnote_command(h, line.encode(), ctypes.byref(out)))
        finally:
            self._leave()
        try:
            raw = ctypes.string_at(out.value) if out.value else b""
        finally:
            self._lib.p2mnote_free(out)
        return json.loads(raw.decode("utf-8", "replace"))


def open(  # noqa: A001 - p2mnote.open, like gzip.open
    dump: Union[str, bytes, os.PathLike],
    system_map: Union[str, bytes, os.PathLike, None] = None,
    vmlinux: Union[str, bytes, os.PathLike, None] = None,
    domain: Optional[int] = None,
    cr3: Optional[int] = None,
    p2m_mfn: Optional[int] = None,
    use_note: bool = True,
) -> Dump:
    """Open a dump.

    :param dump: an ELF vmcore (Xen dom0 kdump), an ``xl dump-core`` file, a makedumpfile
        kdump-compressed file or a flattened stream.
    :param system_map: the guest kernel's System.map.
    :param vmlinux: the guest kernel's vmlinux (symbols and build ID; a different kernel's
        gives :class:`MismatchError`).
    :param domain: open this guest of a host dump (:class:`NoDomainError` if absent).
    :param cr3: the page-table root to use (a machine address).
    :param p2m_mfn: the mfn of the frame-list-list page (a frame tree).
    :param use_note: False to ignore the p2mnote note and use the guest's own tables.
    """
    lib = _lib.lib()
    opts = _lib.OpenOptions()
    keep = []  # the encoded strings must outlive the call
    sm = _path_arg(system_map)
    vm = _path_arg(vmlinux)
    keep += [sm, vm]
    opts.system_map = sm
    opts.vmlinux = vm
    flags = 0
    if cr3 is not None:
        flags |= _lib.OPEN_CR3
        opts.cr3 = cr3
    if p2m_mfn is not None:
        flags |= _lib.OPEN_P2M_MFN
        opts.p2m_mfn = p2m_mfn
    if domain is not None:
        flags |= _lib.OPEN_DOMAIN
        opts.domain = domain
    if not use_note:
        flags |= _lib.OPEN_NO_NOTE
    opts.flags = flags
    path = os.fsencode(dump)
    handle = _lib.p2mnote_p()
    _check(lib.p2mnote_open(path, ctypes.byref(opts), ctypes.byref(handle)), "p2mnote_open")
    if not handle.value:
        raise InternalError(f"{os.fsdecode(path)}: p2mnote_open succeeded with a NULL handle")
    return Dump(handle.value, os.fsdecode(path))


def version() -> str:
    """p2mnote_version(): "p2mnote X.Y.Z (note format 1.1, API 1)"."""
    return _lib.version()
