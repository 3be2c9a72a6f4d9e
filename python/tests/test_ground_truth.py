"""The rules the real-dump tests rely on, tried on made-up records: compare_tasks (which task
differences between the live recording and the dump are allowed) and Tools/real-dump's
records_ok (an empty or short record makes the stage run again instead of a test fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import unittest

import support

RECORDS_SH = os.path.join(support.REPO, "Tools", "real-dump", "records.sh")

BASE = {1: (0, "init"), 2: (0, "kthreadd"), 3: (2, "rcu_gp"), 40: (1, "sh"), 41: (2, "kworker/0:1-events")}


class CompareTasks(unittest.TestCase):
    def dump(self, **changes):
        d = {pid: (ppid, comm, comm.startswith("kworker/")) for pid, (ppid, comm) in BASE.items()}
        d.update(changes.get("add", {}))
        for pid in changes.get("remove", []):
            del d[pid]
        return d

    def test_identical(self) -> None:
        self.assertEqual(support.compare_tasks(BASE, self.dump()), ([], []))

    def test_workers_may_come_go_and_change_their_description(self) -> None:
        d = self.dump(add={42: (2, "kworker/0:2-events_power_efficient", True), 41: (2, "kworker/0:1-mm_percpu_wq", True)})
        errors, allowed = support.compare_tasks(BASE, d)
        self.assertEqual(errors, [])
        self.assertEqual(len(allowed), 2)
        errors, allowed = support.compare_tasks(BASE, self.dump(remove=[41]))
        self.assertEqual((errors, len(allowed)), ([], 1))

    def test_anything_else_is_an_error(self) -> None:
        cases = {
            "a process that is not a worker appeared": self.dump(add={50: (1, "sh", False)}),
            "a process vanished": self.dump(remove=[40]),
            "a kthread that is not a worker appeared": self.dump(add={50: (2, "kworker/0:3", False)}),
            "a kworker/ name whose parent is not kthreadd": self.dump(add={50: (40, "kworker/0:3", True)}),
            "a comm changed": self.dump(add={40: (1, "ash", False)}),
            "a parent changed": self.dump(add={40: (2, "sh", False)}),
            "a worker turned into something else": self.dump(add={41: (2, "rcu_par_gp", False)}),
        }
        for what, d in cases.items():
            errors, _ = support.compare_tasks(BASE, d)
            self.assertEqual(len(errors), 1, f"{what}: {errors}")
        recorded = dict(BASE)
        recorded[43] = (40, "kworker/fake")  # recorded with a parent other than kthreadd
        errors, _ = support.compare_tasks(recorded, self.dump())
        self.assertEqual(len(errors), 1, errors)

    def test_no_kthreadd_no_rule(self) -> None:
        recorded = {pid: row for pid, row in BASE.items() if pid != 2}
        errors, _ = support.compare_tasks(recorded, self.dump(remove=[2]))
        self.assertTrue(any("kthreadd" in e for e in errors), errors)


class RecordsOk(unittest.TestCase):
    """Tools/real-dump/records.sh on a complete record, then on each record emptied or cut."""

    def setUp(self) -> None:
        if not shutil.which("bash"):
            support.skip_loudly("bash is not installed")
        self.d = tempfile.mkdtemp(prefix="p2mnote-records-")
        self.addCleanup(shutil.rmtree, self.d, True)

    def write(self, *, tasks=3, dmesg=50, modules=2, kallsyms=4, said=None) -> int:
        said = said or {}
        o = self.d
        lines = ["P2M-TRUTH-BEGIN", "UNAME Linux x 6.1.0 #1 SMP x86_64 GNU/Linux"]
        lines += [f"MODULE m{i} 16384 0 - Live 0xffffffffc000{i}000" for i in range(modules)]
        lines += [f"KALLSYMS ffffffff8100{i}000 D sym{i}" for i in range(kallsyms)]
        lines.append(f"P2M-TRUTH-END uname=40 modules={said.get('modules', modules)} kallsyms={said.get('kallsyms', kallsyms)}")
        lines.append("P2M-LATE-BEGIN")
        lines += [f"DMESG-TAIL [    1.{i:06d}] line {i}" for i in range(dmesg)]
        lines += [f"TASK {i + 1} 0 task{i}" for i in range(tasks)]
        lines.append(f"P2M-LATE-END tasks={said.get('tasks', tasks)} dmesg={said.get('dmesg', dmesg)}")
        console = os.path.join(o, "console.txt")
        with open(console, "w") as f:
            f.write("\n".join(lines) + "\n")
        # What Tools/real-dump's extract() writes from such a console.
        pick = lambda p: [l[len(p):] for l in lines if l.startswith(p)]  # noqa: E731
        for name, prefix in (("uname.txt", "UNAME "), ("modules.txt", "MODULE "), ("kallsyms.txt", "KALLSYMS "), ("dmesg-tail.txt", "DMESG-TAIL ")):
            with open(os.path.join(o, name), "w") as f:
                f.write("".join(l + "\n" for l in pick(prefix)))
        with open(os.path.join(o, "tasks.txt"), "w") as f:
            f.write("# pid ppid comm\n" + "".join(l + "\n" for l in pick("TASK ")))
        r = subprocess.run(["bash", "-c", f'. "$1"; records_ok "$2" "$3" test', "-", RECORDS_SH, console, o],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.stderr = r.stderr
        return r.returncode

    def test_complete(self) -> None:
        self.assertEqual(self.write(), 0, self.stderr)
        with open(os.path.join(self.d, "records.txt")) as f:
            self.assertEqual(f.read().splitlines()[-1], "40 2 4 3 50")

    def test_emptied_or_short_records_are_refused(self) -> None:
        for what, kw in {
            "no tasks": dict(tasks=0),
            "no dmesg": dict(dmesg=0),
            "no modules": dict(modules=0),
            "a dmesg line lost": dict(said={"dmesg": 51}),
            "a task lost": dict(said={"tasks": 4}),
            "a kallsyms line lost": dict(said={"kallsyms": 5}),
        }.items():
            self.assertNotEqual(self.write(**kw), 0, what)
            self.assertIn("incomplete records", self.stderr, what)

    def test_missing_end_marker(self) -> None:
        self.write()
        console = os.path.join(self.d, "console.txt")
        with open(console) as f:
            text = f.read().replace("P2M-LATE-END", "P2M-LATE-CUT")
        with open(console, "w") as f:
            f.write(text)
        r = subprocess.run(["bash", "-c", '. "$1"; records_ok "$2" "$3" test', "-", RECORDS_SH, console, self.d],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no P2M-LATE-END", r.stderr)


if __name__ == "__main__":
    unittest.main()
