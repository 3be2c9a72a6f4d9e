"""The malformed-dump corpus (``p2m-gendump malformed``: every container broken one way at a
time, with what every tool must say) through the library and the Python package: each case the
corpus marks for the library is refused by ``p2mnote.open`` (or, for damaged page data, by the
read of that page) with a ``P2MNoteError`` naming the file and the case's words; none aborts the
process. The command-line tools get the same corpus in Tests/P2MToolsTests/MalformedCorpusTests."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import support
import p2mnote


class MalformedCorpus(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        support.require_library()
        support.require_executable(support.GENDUMP, "p2m-gendump")
        cls.dir = tempfile.mkdtemp(prefix="p2mnote-malformed-")
        r = subprocess.run([support.GENDUMP, "malformed", "-o", cls.dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        with open(os.path.join(cls.dir, "cases.json")) as f:
            cls.cases = json.load(f)

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.dir, True)

    def test_at_least_a_hundred_inputs(self) -> None:
        self.assertGreaterEqual(len(self.cases), 100)

    def test_library_refuses_each_cleanly(self) -> None:
        smap = os.path.join(self.dir, "guest.System.map")
        refused = 0
        for c in self.cases:
            if "library" not in c["fail"]:
                continue
            path = os.path.join(self.dir, c["file"])
            with self.subTest(c["name"]):
                try:
                    with p2mnote.open(path, system_map=smap) as d:
                        if c.get("readMachine") is None:
                            self.fail(f"{c['name']}: opened ({c['what']})")
                        d.read(c["readMachine"], 16, space=p2mnote.MACHINE)
                        self.fail(f"{c['name']}: read machine 0x{c['readMachine']:x} ({c['what']})")
                except p2mnote.P2MNoteError as e:
                    msg = str(e)
                    self.assertIn(c["file"], msg, "the error does not name the file")
                    for w in c["expect"]:
                        self.assertIn(w.lower(), msg.lower(), f"{c['name']}: {w!r} missing")
                    if c["offset"]:
                        self.assertIn("offset 0x", msg)
                    refused += 1
        self.assertEqual(refused, sum("library" in c["fail"] for c in self.cases))

    def test_every_input_through_the_library_in_one_child(self) -> None:
        # Every case, refused or not: open it, ask for info, the p2m and a few reads, in a child
        # interpreter, which must end normally (no abort, no signal, no hang): the library turns
        # whatever the file holds into P2MNoteError.
        body = """
            import p2mnote
            out = {}
            for path in ARGS["paths"]:
                said = []
                try:
                    with p2mnote.open(path, system_map=ARGS["map"]) as d:
                        for call in (lambda: d.info, lambda: d.p2m_entries(0, 4096),
                                     lambda: d.read(0x100000, 64, space=p2mnote.MACHINE),
                                     lambda: d.read(d.symbol("linux_banner"), 64)):
                            try:
                                call(); said.append("ok")
                            except p2mnote.P2MNoteError as e:
                                said.append(type(e).__name__)
                except p2mnote.P2MNoteError as e:
                    said.append("refused: " + type(e).__name__)
                out[path] = said
            return out
        """
        paths = [os.path.join(self.dir, c["file"]) for c in self.cases]
        r = support.run_child(body, {"paths": paths, "map": os.path.join(self.dir, "guest.System.map")}, timeout=600)
        self.assertTrue(r.data["ok"], r.data)
        self.assertEqual(sorted(r.data["result"]), sorted(paths))
        # The cases the corpus marks for the library are refused at open, the others opened.
        for c in self.cases:
            said = r.data["result"][os.path.join(self.dir, c["file"])]
            if "library" in c["fail"] and c.get("readMachine") is None:
                self.assertTrue(said and said[0].startswith("refused"), f"{c['name']}: {said}")


if __name__ == "__main__":
    unittest.main()
