"""ctypes bindings of libp2mnote (Sources/CP2MNote/include/p2mnote.h, API 1).

Every function of the header is bound here with its exact argument and result types, and every
structure is mirrored with the same layout (Sources/CP2MNote/abi.c pins the sizes; they are
checked again below). Nothing is loaded at import time: :func:`lib` finds and loads the shared
library on first use, so ``import p2mnote`` and ``python3 -m p2mnote --help`` work without it.

Where the library is looked for, in order:

1. the path in the environment variable ``P2MNOTE_LIBRARY`` (when set, it is the only place
   tried: a failure there is reported, never silently replaced by another copy);
2. ``libp2mnote.so`` next to this package (copied there by hand);
3. the system loader, ``ctypes.CDLL("libp2mnote.so")`` (``make install PREFIX=/usr/local``
   puts it in ``/usr/local/lib``);
4. when the package runs from a checkout (``python/`` inside the repository):
   ``.build/release/libp2mnote.so`` then ``.build/debug/libp2mnote.so`` of that repository.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
from ctypes import (
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import List, Optional, Tuple

API_VERSION = 1

# p2mnote_status
OK = 0
ERR_ARGUMENT = 1
ERR_IO = 2
ERR_FORMAT = 3
ERR_NO_P2M = 4
ERR_NO_SYMBOL = 5
ERR_UNMAPPED = 6
ERR_NOT_IN_DUMP = 7
ERR_MISMATCH = 8
ERR_NO_DOMAIN = 9
ERR_RANGE = 10
ERR_INTERNAL = 11

STATUS_NAMES = {
    OK: "P2MNOTE_OK",
    ERR_ARGUMENT: "P2MNOTE_ERR_ARGUMENT",
    ERR_IO: "P2MNOTE_ERR_IO",
    ERR_FORMAT: "P2MNOTE_ERR_FORMAT",
    ERR_NO_P2M: "P2MNOTE_ERR_NO_P2M",
    ERR_NO_SYMBOL: "P2MNOTE_ERR_NO_SYMBOL",
    ERR_UNMAPPED: "P2MNOTE_ERR_UNMAPPED",
    ERR_NOT_IN_DUMP: "P2MNOTE_ERR_NOT_IN_DUMP",
    ERR_MISMATCH: "P2MNOTE_ERR_MISMATCH",
    ERR_NO_DOMAIN: "P2MNOTE_ERR_NO_DOMAIN",
    ERR_RANGE: "P2MNOTE_ERR_RANGE",
    ERR_INTERNAL: "P2MNOTE_ERR_INTERNAL",
}

# p2mnote_space
KVIRT = 0
PPHYS = 1
MACHINE = 2

# p2mnote_entry_kind
ENTRY_MFN = 0
ENTRY_INVALID = 1
ENTRY_IDENTITY = 2
ENTRY_FOREIGN = 3

# p2mnote_open_options.flags
OPEN_CR3 = 1 << 0
OPEN_P2M_MFN = 1 << 1
OPEN_DOMAIN = 1 << 2
OPEN_NO_NOTE = 1 << 3

UINT64_MAX = (1 << 64) - 1

# The enums are 32-bit (abi.c asserts it); ctypes' c_int is 32-bit on every Linux ABI we run on.
p2mnote_status = c_int
p2mnote_space = c_int
p2mnote_entry_kind = c_int
p2mnote_p = c_void_p  # struct p2mnote * (opaque)


class OpenOptions(Structure):
    """struct p2mnote_open_options"""

    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("system_map", c_char_p),
        ("vmlinux", c_char_p),
        ("cr3", c_uint64),
        ("p2m_mfn", c_uint64),
        ("domain", c_int64),
    ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.struct_size = ctypes.sizeof(OpenOptions)


class Info(Structure):
    """struct p2mnote_info"""

    _fields_ = [
        ("struct_size", c_uint32),
        ("page_size", c_uint32),
        ("path", c_char_p),
        ("container", c_char_p),
        ("machine_bytes", c_uint64),
        ("kernel_offset", c_uint64),
        ("symbol_count", c_uint64),
        ("domain", c_int64),
    ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.struct_size = ctypes.sizeof(Info)


class WalkStep(Structure):
    """struct p2mnote_walk_step"""

    _fields_ = [
        ("level", c_uint32),
        ("index", c_uint32),
        ("table_mfn", c_uint64),
        ("entry", c_uint64),
    ]


class Walk(Structure):
    """struct p2mnote_walk"""

    _fields_ = [
        ("vaddr", c_uint64),
        ("maddr", c_uint64),
        ("page_size", c_uint64),
        ("pfn", c_uint64),
        ("nsteps", c_uint32),
        ("reserved", c_uint32),
        ("steps", WalkStep * 5),
    ]


class Registers(Structure):
    """struct p2mnote_registers"""

    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("cpu", ctypes.c_int32),
        ("pcpu", ctypes.c_int32),
        ("source", c_char_p),
        ("regs", c_uint64 * 27),
    ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.struct_size = ctypes.sizeof(Registers)


# The sizes abi.c pins with _Static_assert; a mismatch is a defect of this file.
assert ctypes.sizeof(OpenOptions) == 48, ctypes.sizeof(OpenOptions)
assert ctypes.sizeof(Info) == 56, ctypes.sizeof(Info)
assert ctypes.sizeof(WalkStep) == 24, ctypes.sizeof(WalkStep)
assert ctypes.sizeof(Registers) == 24 + 27 * 8, ctypes.sizeof(Registers)
assert ctypes.sizeof(Walk) == 40 + 5 * 24, ctypes.sizeof(Walk)
assert ctypes.sizeof(c_int) == 4

# name: (restype, argtypes)
PROTOTYPES = {
    "p2mnote_version": (c_char_p, []),
    "p2mnote_last_error": (c_char_p, []),
    "p2mnote_open": (p2mnote_status, [c_char_p, POINTER(OpenOptions), POINTER(p2mnote_p)]),
    "p2mnote_close": (None, [p2mnote_p]),
    "p2mnote_free": (None, [c_void_p]),
    "p2mnote_get_info": (p2mnote_status, [p2mnote_p, POINTER(Info)]),
    "p2mnote_root": (p2mnote_status, [p2mnote_p, POINTER(c_uint64), POINTER(c_char_p)]),
    "p2mnote_p2m": (
        p2mnote_status,
        [p2mnote_p, POINTER(c_uint64), POINTER(c_char_p), POINTER(c_char_p)],
    ),
    "p2mnote_pfn_to_mfn": (
        p2mnote_status,
        [p2mnote_p, c_uint64, POINTER(c_uint64), POINTER(p2mnote_entry_kind)],
    ),
    "p2mnote_p2m_entries": (
        p2mnote_status,
        [p2mnote_p, c_uint64, POINTER(c_uint64), c_size_t, POINTER(c_size_t)],
    ),
    "p2mnote_mfn_to_pfn": (
        p2mnote_status,
        [p2mnote_p, c_uint64, POINTER(c_uint64), c_size_t, POINTER(c_size_t)],
    ),
    "p2mnote_vtop": (p2mnote_status, [p2mnote_p, c_uint64, POINTER(Walk)]),
    "p2mnote_read": (
        p2mnote_status,
        [p2mnote_p, p2mnote_space, c_uint64, c_void_p, c_size_t, POINTER(c_size_t)],
    ),
    "p2mnote_symbol": (p2mnote_status, [p2mnote_p, c_char_p, POINTER(c_uint64)]),
    "p2mnote_banner": (p2mnote_status, [p2mnote_p, POINTER(c_char_p)]),
    "p2mnote_vmcoreinfo": (
        p2mnote_status,
        [p2mnote_p, POINTER(c_char_p), POINTER(c_size_t), POINTER(c_int)],
    ),
    # char ** out: a c_void_p so that the pointer survives for p2mnote_free (a c_char_p would be
    # converted to bytes and the address lost).
    "p2mnote_command": (p2mnote_status, [p2mnote_p, c_char_p, POINTER(c_void_p)]),
    "p2mnote_registers": (p2mnote_status, [p2mnote_p, c_size_t, POINTER(Registers), POINTER(c_size_t)]),
}


class LibraryNotFoundError(ImportError):
    """libp2mnote.so could not be loaded from any of the places it is looked for."""

    def __init__(self, tried: List[Tuple[str, str]]):
        self.tried = tried
        lines = "; ".join(f"{where}: {why}" for where, why in tried)
        super().__init__(
            "cannot load libp2mnote.so (set P2MNOTE_LIBRARY to its path, or build it with "
            "`swift build` / install it with `make install`); tried: " + lines
        )


def _checkout_root() -> Optional[str]:
    """The repository root when this package runs from python/ of a checkout, else None."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    python_dir = os.path.dirname(package_dir)
    root = os.path.dirname(python_dir)
    if os.path.basename(python_dir) == "python" and os.path.isfile(
        os.path.join(root, "Package.swift")
    ):
        return root
    return None


def candidates() -> List[Tuple[str, str]]:
    """(description, what to pass to ctypes.CDLL) in the order they are tried."""
    out: List[Tuple[str, str]] = []
    env = os.environ.get("P2MNOTE_LIBRARY")
    if env:
        return [("$P2MNOTE_LIBRARY=" + env, env)]
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libp2mnote.so")
    out.append((here, here))
    out.append(("system loader (libp2mnote.so)", "libp2mnote.so"))
    root = _checkout_root()
    if root is not None:
        for conf in ("release", "debug"):
            path = os.path.join(root, ".build", conf, "libp2mnote.so")
            out.append((path, path))
    return out


_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_lib_path: Optional[str] = None


def _bind(cdll: ctypes.CDLL) -> None:
    missing = []
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise OSError("missing symbols " + ", ".join(missing))
    version = cdll.p2mnote_version()
    text = version.decode("utf-8", "replace") if version else ""
    m = re.search(r"API (\d+)", text)
    if not m:
        raise OSError(f"p2mnote_version() says {text!r}, with no API version")
    if int(m.group(1)) < API_VERSION:
        raise OSError(f"{text!r} is older than API {API_VERSION}")


def lib() -> ctypes.CDLL:
    """The loaded, bound library (loaded on the first call)."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried: List[Tuple[str, str]] = []
        for where, name in candidates():
            if os.sep in name and not os.path.exists(name):
                tried.append((where, "no such file"))
                continue
            try:
                cdll = ctypes.CDLL(name)
                _bind(cdll)
            except OSError as e:
                tried.append((where, str(e)))
                continue
            _lib_path = name
            _lib = cdll
            return cdll
        raise LibraryNotFoundError(tried)


def library_path() -> Optional[str]:
    """What the library was loaded from (None before the first load)."""
    return _lib_path


def last_error() -> str:
    """p2mnote_last_error() of this thread, decoded."""
    msg = lib().p2mnote_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def version() -> str:
    return lib().p2mnote_version().decode("utf-8", "replace")
