"""python3 -m p2mnote: drgn's shell on a Xen PV dump, or what the dump is.

    python3 -m p2mnote drgn DUMP --vmlinux VMLINUX [--system-map MAP] [--domain N] [-s SCRIPT [ARGS...]]
    python3 -m p2mnote info DUMP [--system-map MAP] [--vmlinux VMLINUX] [--json]

A problem with the dump, a symbol file or the library is one line, ``p2mnote: <message>``, on
stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from typing import Any, Dict, Iterable, List, Optional

import p2mnote

PROG = "python3 -m p2mnote"

DESCRIPTION = """\
Read a Xen PV Linux crash dump (a dom0 kdump ELF vmcore, an `xl dump-core` file, a makedumpfile
kdump-compressed file or flattened stream) through libp2mnote: kernel virtual addresses are
translated by walking the guest's page tables in machine memory, pseudo-physical ones through the
p2m (the dump's p2mnote note first, else the guest's own tables).
"""

EPILOG = """\
commands:
  drgn   drgn's interactive shell (or a script) on the dump, as `drgn -c vmcore` gives on a
         native one; needs drgn >= 0.3.0 and the kernel's debug vmlinux
  info   the dump's container, machine memory, page-table root, p2m source and kernel banner

examples:
  %(prog)s drgn dom0.vmcore --vmlinux vmlinux-6.1.0-57-amd64
  %(prog)s drgn domU.xcore --vmlinux vmlinux -s tasks.py --all
  %(prog)s info dom0.vmcore --system-map System.map
  %(prog)s info dom0.vmcore --system-map System.map --json

The library is libp2mnote.so: $P2MNOTE_LIBRARY, next to the package, the system loader's path,
then .build/{release,debug}/ of the checkout the package runs from.
"""

DRGN_EPILOG = """\
In the shell, `prog` is the program and drgn's helpers are imported, as in `drgn -c`. A script
(-s) runs as __main__ with `prog` in its globals (as drgn runs scripts) and sys.argv set to
[SCRIPT, ARGS...]; everything after SCRIPT is the script's. -e runs one string of code instead.

examples:
  %(prog)s dom0.vmcore --vmlinux vmlinux
  %(prog)s dom0.vmcore --vmlinux vmlinux -e 'print(prog["init_uts_ns"].name.release)'
  %(prog)s dom0.vmcore --vmlinux vmlinux -s ps.py -v
"""

CRASH_EPILOG = """\
Every crash command drgn's compatibility mode provides (`help` lists them): bt (of the
panicking task; -a every CPU), ps, sys, mod, log, kmem -i, task, files, ... The registers of each
guest CPU at the crash come from Xen's per-CPU stacks (a dom0 kdump, a host dump's guests) or the
xl dump-core's vCPU contexts. A failed command is reported on stderr and the session goes on;
the exit status is 1 when any command failed.

examples:
  %(prog)s dom0.vmcore vmlinux
  %(prog)s host.vmcore vmlinux --domain 1
  echo 'bt' | %(prog)s dom0.vmcore vmlinux
  %(prog)s dom0.vmcore vmlinux -i commands.txt
"""

INFO_EPILOG = """\
Prints every field it can; a part that fails (e.g. no p2m source) is reported as
`p2mnote: <message>` on stderr and the exit status is 1.

examples:
  %(prog)s dom0.vmcore --system-map System.map
  %(prog)s domU.xcore --vmlinux vmlinux --json
"""


class _Fail(Exception):
    """A one-line failure for the user."""


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _hex(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a hexadecimal number: {text!r}") from None


def _dump_options(p: argparse.ArgumentParser, vmlinux_required: bool) -> None:
    p.add_argument("dump", metavar="DUMP", help="the dump (ELF vmcore, xl dump-core, kdump-compressed)")
    p.add_argument(
        "--vmlinux",
        metavar="VMLINUX",
        required=vmlinux_required,
        help="the guest kernel's vmlinux (with debug info for drgn); its build ID must match the dump's kernel",
    )
    p.add_argument("--system-map", metavar="MAP", help="the guest kernel's System.map")
    p.add_argument(
        "--domain", metavar="N", type=_int, help="open guest domain N of a host dump (default: the dump's own guest)"
    )
    p.add_argument("--cr3", metavar="MADDR", type=_hex, help="machine address of the top page table (hex)")
    p.add_argument("--p2m-mfn", metavar="MFN", type=_hex, help="mfn of the frame-list-list page (hex)")
    p.add_argument("--no-note", action="store_true", help="ignore the p2mnote note; use the guest's own tables")


def _prog_name() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return PROG if name in ("", "__main__.py", "-c", "-m") else name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog_name(),
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the package's and the library's versions")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser(
        "drgn",
        help="drgn's shell or a script on the dump",
        description="drgn's interactive shell on a Xen PV dump, or a drgn script run on it.",
        epilog=DRGN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _dump_options(d, vmlinux_required=True)
    d.add_argument(
        "--debug-info",
        metavar="FILE",
        action="append",
        default=[],
        help="another file with debug info for drgn (e.g. a module's .ko); repeatable",
    )
    d.add_argument("-q", "--quiet", action="store_true", help="no banner in the shell")
    g = d.add_mutually_exclusive_group()
    g.add_argument(
        "-s",
        "--script",
        nargs=argparse.REMAINDER,
        metavar="SCRIPT [ARGS]",
        help="run SCRIPT with `prog` in its globals; the arguments after it are the script's",
    )
    g.add_argument("-e", "--exec", metavar="CODE", help="run CODE (with drgn's helpers imported) instead of a shell")

    c = sub.add_parser(
        "crash",
        help="drgn's crash-compatible session on the dump (bt, ps, mod, log, kmem, ...)",
        description="A crash-compatible session on a Xen PV dump: drgn's crash compatibility "
        "mode over the dump's memory, with each CPU's registers at the crash. Interactive on a "
        "terminal (with history); commands from -i FILE, then from stdin when it is not a terminal.",
        epilog=CRASH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _dump_options(c, vmlinux_required=False)
    c.add_argument("vmlinux_arg", nargs="?", metavar="VMLINUX", help="the guest kernel's debug vmlinux (as crash takes it; or --vmlinux)")
    c.add_argument("-i", dest="input", metavar="FILE", help="run the commands in FILE first (as crash -i)")
    c.add_argument("--debug-info", metavar="FILE", action="append", default=[], help="another file with debug info (a module's .ko); repeatable")

    i = sub.add_parser(
        "info",
        help="what the dump is: container, root, p2m, banner",
        description="The dump's container, machine memory, page-table root, p2m source and banner.",
        epilog=INFO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _dump_options(i, vmlinux_required=False)
    i.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return parser


def _open(args: argparse.Namespace) -> "p2mnote.Dump":
    return p2mnote.open(
        args.dump,
        system_map=args.system_map,
        vmlinux=args.vmlinux,
        domain=args.domain,
        cr3=args.cr3,
        p2m_mfn=args.p2m_mfn,
        use_note=not args.no_note,
    )


def _info(args: argparse.Namespace) -> int:
    failures: List[str] = []
    out: Dict[str, Any] = {}
    with _open(args) as d:
        info = d.info
        out["info"] = info.asdict()
        for key, fn in (("root", d.root), ("p2m", d.p2m), ("banner", d.banner)):
            try:
                out[key] = fn()
            except p2mnote.P2MNoteError as e:
                failures.append(e.message)
                out[key + "Error"] = e.message
        try:
            vi = d.vmcoreinfo()
            out["vmcoreinfoSynthesised"] = vi.synthesised
            out["vmcoreinfoOrigin"] = vi.origin
        except p2mnote.P2MNoteError as e:
            out["vmcoreinfoError"] = e.message
    if args.json:
        # The same envelope and keys as `p2m-analyze DUMP info --json` (Spec/json.md), from the
        # library's own info command, plus what this command adds: banner and VMCOREINFO.
        with _open(args) as d:
            try:
                j = d.command("info")
            except p2mnote.P2MNoteError as e:
                failures.append(e.message)
                j = {"dump": info.path, "command": "info", "result": {}}
        extra = j.setdefault("result", {})
        extra["domain"] = info.domain
        if "banner" in out:
            extra["banner"] = out["banner"]
        for k in ("bannerError", "vmcoreinfoSynthesised", "vmcoreinfoOrigin", "vmcoreinfoError"):
            if k in out:
                extra[k] = out[k]
        print(json.dumps(j, indent=2))
    else:
        print(f"dump:       {info.path}")
        print(f"container:  {info.container}, {info.machine_bytes} bytes of machine memory, pages of {info.page_size}")
        print(f"domain:     {'the dump’s own guest' if info.domain is None else info.domain}")
        print(f"symbols:    {info.symbol_count}, kernel offset {info.kernel_offset:#x}")
        if "root" in out:
            print(f"cr3:        {out['root'].maddr:#x} ({out['root'].how})")
        if "p2m" in out:
            p = out["p2m"]
            print(f"p2m:        {p.nr_pfns} pfns from {p.source}: {p.location}")
        if "banner" in out:
            print(f"banner:     {out['banner']}")
        if "vmcoreinfoSynthesised" in out:
            how = {
                "note": "the dump’s own note",
                "kernel memory": "the kernel’s own text, read from its memory (vmcoreinfo_data)",
                "synthesised": "made by the library from the dump",
            }
            print(f"vmcoreinfo: {how.get(out.get('vmcoreinfoOrigin', ''), out.get('vmcoreinfoOrigin', '?'))}")
    for f in failures:
        print(f"p2mnote: {f}", file=sys.stderr)
    return 1 if failures else 0


def _drgn_program(args: argparse.Namespace) -> "drgn.Program":
    try:
        import drgn
        import p2mnote.drgn as pdrgn
    except ImportError as e:
        raise _Fail(f"drgn is not importable ({e}); install it with `pip install drgn` (>= 0.3.0)")
    if not hasattr(drgn.Program, "set_linux_kernel_custom"):
        raise _Fail(f"drgn {getattr(drgn, '__version__', '?')} lacks Program.set_linux_kernel_custom; drgn >= 0.3.0 is needed")
    for path in [args.vmlinux] + list(args.debug_info):
        if not os.path.isfile(path):
            raise _Fail(f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a regular file")
    try:
        prog = pdrgn.program(
            args.dump,
            vmlinux=args.vmlinux,
            system_map=args.system_map,
            domain=args.domain,
            cr3=args.cr3,
            p2m_mfn=args.p2m_mfn,
            use_note=not args.no_note,
            debug_info=args.debug_info,
        )
    except drgn.MissingDebugInfoError as e:
        # Modules' debug info is optional (the vmlinux is what matters); anything else is not.
        raise _Fail(str(e).splitlines()[0] if str(e) else "missing debug info")
    except (ValueError, OSError, LookupError, drgn.FaultError) as e:
        if isinstance(e, p2mnote.P2MNoteError):
            raise
        raise _Fail(f"{args.dump}: drgn: {e}")
    return prog


def _drgn(args: argparse.Namespace) -> int:
    import drgn

    prog = _drgn_program(args)
    if args.script:
        script, *rest = args.script
        if not os.path.isfile(script):
            raise _Fail(f"{script}: no such script")
        drgn.set_default_prog(prog)
        sys.argv = [script] + rest
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, init_globals={"prog": prog}, run_name="__main__")
        return 0
    if args.exec is not None:
        from drgn.cli import default_globals

        drgn.set_default_prog(prog)
        sys.argv = ["-e"]
        g = default_globals(prog)
        exec(compile(args.exec, "<string>", "exec"), g)
        return 0

    from drgn import cli

    if sys.stdin.isatty():
        def banner(default: str) -> str:
            head = f"{cli.version_header()}\n" if hasattr(cli, "version_header") else ""
            where = f"p2mnote: {args.dump} through {p2mnote._lib.library_path()}"
            return "" if args.quiet else f"{head}{where}\n{default}"

        cli.run_interactive(prog, banner_func=banner)
    else:
        # Not a terminal: run stdin as a script, as drgn does.
        from drgn.cli import default_globals

        drgn.set_default_prog(prog)
        g = default_globals(prog)
        g["__file__"] = "<stdin>"
        exec(compile(sys.stdin.read(), "<stdin>", "exec"), g)
    return 0


def _crash(args: argparse.Namespace) -> int:
    if args.vmlinux_arg is not None:
        if args.vmlinux is not None and args.vmlinux != args.vmlinux_arg:
            raise _Fail("give the vmlinux once (VMLINUX or --vmlinux)")
        args.vmlinux = args.vmlinux_arg
    if args.vmlinux is None:
        raise _Fail("crash's commands need the kernel's debug info: give the debug vmlinux (VMLINUX or --vmlinux)")
    prog = _drgn_program(args)
    import drgn

    try:
        import drgn.cli
        from drgn.commands import _crash as crash_mode
        from drgn.commands._crash.common import CRASH_COMMAND_NAMESPACE
    except ImportError as e:
        raise _Fail(f"drgn {getattr(drgn, '__version__', '?')} has no crash compatibility mode ({e}); drgn >= 0.3.0 is needed")
    drgn.set_default_prog(prog)
    g = drgn.cli.default_globals(prog)
    failures = 0

    def run(lines: Iterable[str], where: str) -> bool:
        """Run crash command lines; False when one of them ended the session (q, exit)."""
        nonlocal failures
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                CRASH_COMMAND_NAMESPACE.run(prog, line, globals=g)
            except crash_mode._ExitCrash:
                return False
            except Exception as e:  # one command's failure is reported; the session goes on
                failures += 1
                print(f"crash: {where}:{n}: {line}: {e}", file=sys.stderr)
            sys.stdout.flush()
        return True

    if args.input is not None:
        try:
            with open(args.input, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise _Fail(f"{args.input}: {e.strerror}")
        if not run(lines, args.input):
            return 1 if failures else 0
    if sys.stdin.isatty():
        crash_mode._cmd_crash(prog, "crash", "", globals=g)
    else:
        run(sys.stdin.read().splitlines(), "<stdin>")
    return 1 if failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"p2mnote (Python) {p2mnote.__version__}")
        try:
            print(f"{p2mnote.version()} from {p2mnote._lib.library_path()}")
        except p2mnote.LibraryNotFoundError as e:
            print(f"p2mnote: {e}", file=sys.stderr)
            return 1
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "info":
            return _info(args)
        if args.command == "crash":
            return _crash(args)
        return _drgn(args)
    except p2mnote.P2MNoteError as e:
        print(f"p2mnote: {e.message}", file=sys.stderr)
    except p2mnote.LibraryNotFoundError as e:
        print(f"p2mnote: {e}", file=sys.stderr)
    except _Fail as e:
        print(f"p2mnote: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print("p2mnote: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours; silence the final flush.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
