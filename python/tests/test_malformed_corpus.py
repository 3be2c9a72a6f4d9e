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

    def test_at_least_sixty_inputs(self) -> None:
        self.assertGreaterEqual(len(self.cases), 60)

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


if __name__ == "__main__":
    unittest.main()
