"""User memory of a Xen PV guest's processes, through its page tables in machine memory.

A PV guest's page tables hold machine frames, in the user half as in the kernel half. drgn's
walker (``_linux_helper_read_vm``, ``_linux_helper_follow_phys``) reads the next table at the
frame an entry names as a *physical* (pseudo-physical) address: under PV that is a machine
frame read as a pfn, which lands on whatever the p2m maps that pfn to. It seems to work where
the p2m happens to map such pfns 1:1 (beyond a guest's RAM Linux marks them identity) and reads
the wrong page elsewhere; and ``follow_phys`` then returns a machine address, not a
pseudo-physical one.

Here the walk reads each table in machine memory (the library's MACHINE reads), starting from
the machine frame of ``mm->pgd`` (the library's kernel page walk), and a physical address is
the pfn whose p2m entry is the final machine frame (the library's m2p index).
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Tuple

import p2mnote as _p2mnote

PAGE = 4096
_PRESENT = 0x1
_PSE = 0x80
_FRAME = 0x000F_FFFF_FFFF_F000


class UserFault(Exception):
    """A user address that does not translate (``address``: the one that failed)."""

    def __init__(self, message: str, address: int):
        super().__init__(message)
        self.message = message
        self.address = address


def root(dump: "_p2mnote.Dump", pgd: int, vaddr: int) -> int:
    """The machine address of the top table at kernel virtual address ``pgd`` (``mm->pgd``);
    ``vaddr`` names the address a failure is reported at."""
    try:
        return dump.vtop(pgd).maddr & _FRAME
    except _p2mnote.P2MNoteError as e:
        raise UserFault(f"the page table at {pgd:#x} does not translate: {e.message}", vaddr)


def translate(dump: "_p2mnote.Dump", top: int, vaddr: int) -> Tuple[int, int]:
    """(machine address, bytes to the end of its page) of ``vaddr`` under the top table at
    machine address ``top`` (:func:`root`)."""
    table = top
    for level, shift in ((4, 39), (3, 30), (2, 21), (1, 12)):
        index = (vaddr >> shift) & 511
        try:
            entry = int.from_bytes(dump.read(table + 8 * index, 8, _p2mnote.MACHINE), "little")
        except _p2mnote.P2MNoteError as e:
            raise UserFault(f"level {level} table at machine {table:#x}: {e.message}", vaddr)
        if not entry & _PRESENT:
            raise UserFault(f"{vaddr:#x} is not mapped (level {level} entry {entry:#x})", vaddr)
        if level in (3, 2) and entry & _PSE or level == 1:
            size = 1 << shift
            base = entry & _FRAME & ~(size - 1)
            off = vaddr & (size - 1)
            return base + off, size - off
        table = entry & _FRAME
    raise AssertionError("unreachable")


def read(dump: "_p2mnote.Dump", pgd: int, vaddr: int, size: int) -> bytes:
    """``size`` bytes at user address ``vaddr`` of the address space ``pgd``."""
    top = root(dump, pgd, vaddr)
    out = bytearray()
    while size > 0:
        maddr, left = translate(dump, top, vaddr)
        n = min(size, left, PAGE - (vaddr & (PAGE - 1)))
        try:
            out += dump.read(maddr, n, _p2mnote.MACHINE)
        except _p2mnote.P2MNoteError as e:
            raise UserFault(f"{vaddr:#x} (machine {maddr:#x}): {e.message}", vaddr)
        vaddr += n
        size -= n
    return bytes(out)


def physical(dump: "_p2mnote.Dump", pgd: int, vaddr: int) -> int:
    """The pseudo-physical address of ``vaddr``: the pfn whose p2m entry is its machine frame."""
    maddr, _ = translate(dump, root(dump, pgd, vaddr), vaddr)
    pfns = dump.mfn_to_pfn(maddr >> 12)
    if len(pfns) != 1:
        what = "no pfn" if not pfns else f"{len(pfns)} pfns ({', '.join(hex(p) for p in pfns[:4])})"
        raise UserFault(f"{vaddr:#x}: machine frame {maddr >> 12:#x} is mapped by {what} in the p2m", vaddr)
    return pfns[0] << 12 | (maddr & (PAGE - 1))


def install_drgn_helpers() -> None:
    """Make drgn's user-memory helpers (``access_process_vm``, ``access_remote_vm`` and so
    ``cmdline``/``environ``, ``follow_phys`` and so ``follow_pfn``/``follow_page``, crash's
    ``rd -u``, ``vtop`` of user addresses, ``ps -a``) walk in machine memory for programs made
    by :func:`p2mnote.drgn.program`; other programs keep drgn's own. Idempotent."""
    import drgn
    import drgn.helpers.linux.mm as mm

    if getattr(mm, "_p2mnote_user_memory", False):
        return
    orig = {n: getattr(mm, n) for n in ("access_process_vm", "access_remote_vm", "follow_phys")}

    def dump_of(prog: Any) -> Any:
        return prog.config.get("p2mnote.dump")

    def fault(e: UserFault) -> Exception:
        return drgn.FaultError(e.message, e.address)

    @functools.wraps(orig["access_remote_vm"])
    def access_remote_vm(mm_obj: Any, address: Any, size: Any) -> bytes:
        d = dump_of(mm_obj.prog_)
        if d is None:
            return orig["access_remote_vm"](mm_obj, address, size)
        try:
            return read(d, mm_obj.pgd.value_(), int(address), int(size))
        except UserFault as e:
            raise fault(e) from None

    @functools.wraps(orig["access_process_vm"])
    def access_process_vm(task: Any, address: Any, size: Any) -> bytes:
        if dump_of(task.prog_) is None:
            return orig["access_process_vm"](task, address, size)
        return access_remote_vm(task.mm, address, size)

    @functools.wraps(orig["follow_phys"])
    def follow_phys(mm_obj: Any, addr: Any) -> Any:
        prog = mm_obj.prog_
        d = dump_of(prog)
        if d is None:
            return orig["follow_phys"](mm_obj, addr)
        try:
            return drgn.Object(prog, "phys_addr_t", physical(d, mm_obj.pgd.value_(), int(addr)))
        except UserFault as e:
            raise fault(e) from None

    patched = {"access_process_vm": access_process_vm, "access_remote_vm": access_remote_vm, "follow_phys": follow_phys}
    for name, fn in patched.items():
        setattr(mm, name, fn)
    # Modules that imported them by name already (crash's rd and vtop) get them too.
    for modname in ("drgn.commands._crash._rd", "drgn.commands._crash._mm", "drgn.helpers.linux"):
        m = sys.modules.get(modname)
        for name, fn in patched.items():
            if m is not None and hasattr(m, name):
                setattr(m, name, fn)
    mm._p2mnote_user_memory = True
