"""Every tool's JSON (and the Python CLI's) against one machine-readable schema,
Spec/json-schema.json, the schema Spec/json.md describes: each p2m-analyze command (one-shot and
script mode), p2m-emit, p2m-inject, p2m-extract, errors on stderr, `python -m p2mnote info`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unittest

import support

SCHEMA = os.path.join(support.REPO, "Spec", "json-schema.json")


def _validator(name: str):
    import jsonschema

    with open(SCHEMA) as f:
        schema = json.load(f)
    root = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{name}"}
    jsonschema.Draft202012Validator.check_schema(root)
    return jsonschema.Draft202012Validator(root)


class JSONSchema(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        try:
            import jsonschema  # noqa: F401
        except ImportError:
            support.skip_loudly("python3-jsonschema is not installed (make deps installs it)")
            raise unittest.SkipTest("no jsonschema")
        cls.g = support.generate_with_note("--guest-mib", "128")
        cls.host = support.generate("host", "--machine-mib", "1024", "--guest", "0:256:dom0", "--guest", "1:128:ballooned")

    def check(self, name: str, doc, what: str) -> None:
        errors = sorted(_validator(name).iter_errors(doc), key=lambda e: list(e.path))
        self.assertEqual([f"{list(e.path)}: {e.message}" for e in errors[:5]], [], what)

    def run_json(self, argv, ok=True):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if ok:
            self.assertEqual(r.returncode, 0, f"{argv}: {r.stderr}")
        return r

    def test_every_analyzer_command(self) -> None:
        g = self.g
        base = [support.ANALYZE, g.path, "--system-map", g.system_map, "--json"]
        commands = ["info", "notes", "p2m 100", "m2p 1000", "vtop linux_banner", "ptov 1000", "rd linux_banner 2",
                    "rd -p 0 2", "rd -m 0 2", "sym linux_banner", "sym linux_banner+8", "banner", "mod", "check",
                    "help", "help rd", "rd --help"]
        for c in commands:
            r = self.run_json(base + c.split(), ok=c != "m2p 1000")
            self.check("analyzeEnvelope", json.loads(r.stdout), c)
        # Script mode: one object per line, the same schema.
        r = subprocess.run(base + ["-"], input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=300)
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        self.assertEqual(len(lines), len(commands), r.stderr)
        for c, l in zip(commands, lines):
            self.check("analyzeEnvelope", json.loads(l), "script: " + c)
        # A crashed host: every guest's note injected (p2m-inject's JSON too), then its commands.
        host = os.path.join(support.tmp_dir(), "host-copy.vmcore")
        subprocess.run(["cp", "--sparse=always", self.host.path, host], check=True)
        r = self.run_json([support.INJECT, host, "--emit", "--all-domains", "--json"])
        self.check("inject", json.loads(r.stdout), "p2m-inject --all-domains")
        for c in ["domains", "check", "info", "notes"]:
            r = self.run_json([support.ANALYZE, host, "--json", c])
            self.check("analyzeEnvelope", json.loads(r.stdout), "host: " + c)

    def test_regs_on_the_real_dump(self) -> None:
        """regs needs Xen's stacks, which only a real dump has."""
        d = support.require_real("dom0.vmcore", "System.map")
        r = self.run_json([support.ANALYZE, os.path.join(d, "dom0.vmcore"), "--system-map", os.path.join(d, "System.map"), "--json", "regs"])
        self.check("analyzeEnvelope", json.loads(r.stdout), "regs")

    def test_errors_on_stderr(self) -> None:
        for argv in ([support.ANALYZE, self.g.path, "--json", "nosuch"], [support.ANALYZE, "/nonexistent", "--json", "info"],
                     [support.EMIT, "/nonexistent", "--json"], [support.INJECT, "/nonexistent", "--emit", "--json"]):
            r = self.run_json(argv, ok=False)
            self.assertNotEqual(r.returncode, 0, argv)
            self.check("error", json.loads(r.stderr.strip().splitlines()[-1]), " ".join(argv))

    def test_emit_inject_extract(self) -> None:
        g = support.generate("dom0", "--guest-mib", "128", "--seed", "21")
        out = os.path.join(support.tmp_dir(), "n.p2mnote")
        r = self.run_json([support.EMIT, g.path, "--system-map", g.system_map, "-o", out, "--json"])
        self.check("emitAll", json.loads(r.stdout), "p2m-emit")
        copy = os.path.join(support.tmp_dir(), "c.vmcore")
        subprocess.run(["cp", "--sparse=always", g.path, copy], check=True)
        r = self.run_json([support.INJECT, copy, "--note", out, "--json"])
        self.check("inject", json.loads(r.stdout), "p2m-inject")
        x = os.path.join(support.tmp_dir(), "d1.xcore")
        r = self.run_json([support.EXTRACT, self.host.path, "--domain", "1", "-o", x, "--json"])
        self.check("extract", json.loads(r.stdout), "p2m-extract")

    def test_python_info(self) -> None:
        support.require_library()
        env = dict(os.environ, PYTHONPATH=os.path.join(support.REPO, "python"))
        r = subprocess.run([sys.executable, "-m", "p2mnote", "info", self.g.path, "--system-map", self.g.system_map, "--json"],
                           capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check("pythonInfo", json.loads(r.stdout), "python -m p2mnote info --json")

    def test_the_schema_can_fail(self) -> None:
        """A wrong key or a number where a hex string belongs is refused (the schema is strict)."""
        r = self.run_json([support.ANALYZE, self.g.path, "--system-map", self.g.system_map, "--json", "vtop", "linux_banner"])
        doc = json.loads(r.stdout)
        doc["result"]["pfn"] = "pfn 0x2161"
        self.assertTrue(list(_validator("analyzeEnvelope").iter_errors(doc)))
        doc = json.loads(r.stdout)
        doc["result"]["vaddr"] = 12345
        self.assertTrue(list(_validator("analyzeEnvelope").iter_errors(doc)))
        doc = json.loads(r.stdout)
        doc["result"]["kvaddr"] = "0x1"
        self.assertTrue(list(_validator("analyzeEnvelope").iter_errors(doc)))


if __name__ == "__main__":
    unittest.main()
