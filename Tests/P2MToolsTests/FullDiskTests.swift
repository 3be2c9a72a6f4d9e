import DumpGen
import DumpIO
import Foundation
import Testing
import TestSupport

/// A full disk, for real: each layout on a small loop-mounted ext4 and on a tmpfs, filled up to
/// 0…8 free 4 KiB blocks, then `p2m-inject --emit`. Whatever the tool answers, a non-zero exit
/// leaves the dump byte for byte as it was and no journal behind, in the same run (on the
/// makedumpfile -E layout the dump once grew by 7000 bytes and was put back only by a later run);
/// a zero exit leaves a note every reader finds. Needs root (mount); skipped loudly otherwise.
@Suite(.serialized) struct FullDiskTests {
    @Test func injectOnAFullDiskLeavesTheDumpAsItWas() throws {
        guard getuid() == 0 else {
            print("SKIPPED LOUDLY: FullDiskTests need root to mount a loop ext4 and a tmpfs")
            return
        }
        let d = try tempDir(); defer { try? FileManager.default.removeItem(atPath: d) }
        let layouts = try injectionLayouts(in: d, seed: 11)
        let img = d + "/ext4.img", mnt = d + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        var outcomes: [String: [String]] = [:]
        for fs in ["ext4", "tmpfs"] {
            if fs == "ext4" {
                #expect(try runTool(["truncate", "-s", "16M", img]).status == 0)
                let m = try runTool(["mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096", img])   // no blocks reserved for root
                guard m.status == 0 else { Issue.record("mkfs.ext4: \(m.stderr)"); continue }
            }
            let mount = try runTool(fs == "ext4" ? ["mount", "-o", "loop", img, mnt] : ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt])
            guard mount.status == 0 else {
                print("SKIPPED LOUDLY: cannot mount \(fs) here: \(mount.stderr)")
                continue
            }
            defer { _ = try? runTool(["umount", mnt]) }
            for (name, path, map) in layouts {
                let original = try Data(contentsOf: URL(fileURLWithPath: path))
                for free in 0...8 {
                    let dump = mnt + "/dump", filler = mnt + "/filler"
                    _ = try? FileManager.default.removeItem(atPath: dump); _ = try? FileManager.default.removeItem(atPath: filler)
                    _ = try? FileManager.default.removeItem(atPath: dump + ".p2minject.journal")
                    #expect(try runTool(["cp", "--sparse=always", path, dump]).status == 0)
                    _ = sync()
                    // Fill the file system up (dd until ENOSPC), then give back `free` blocks.
                    _ = try runTool(["dd", "if=/dev/zero", "of=" + filler, "bs=4096", "status=none"])
                    if free > 0 { #expect(try runTool(["truncate", "-s", "-\(free * 4096)", filler]).status == 0) }
                    _ = sync()
                    let r = try runTool([tool("p2m-inject"), dump, "--emit", "--system-map", map])
                    #expect(r.status == 0 || r.status == 1, "\(fs) \(name) \(free) free: exit \(r.status) \(r.stderr)")
                    let journal = FileManager.default.fileExists(atPath: dump + ".p2minject.journal") || FileManager.default.fileExists(atPath: dump + ".p2minject.journal.tmp")
                    if r.status == 0 {
                        #expect(try openDump(path: dump).p2mNotes.count == 1, "\(fs) \(name) \(free) free: exit 0 but no note")
                        outcomes[fs + " " + name, default: []].append("\(free):ok")
                    } else {
                        let now = try Data(contentsOf: URL(fileURLWithPath: dump))
                        #expect(now == original, "\(fs) \(name), \(free) free blocks: exit \(r.status) and the dump changed (\(original.count) → \(now.count) bytes): \(r.stderr)")
                        // Said as a refusal that changed nothing, never as a dump left for a later run.
                        #expect(r.stderr.contains("p2m-inject: error") && !r.stderr.contains("could not be put back"), "\(fs) \(name) \(free): \(r.stderr)")
                        outcomes[fs + " " + name, default: []].append("\(free):refused")
                    }
                    #expect(!journal, "\(fs) \(name), \(free) free blocks: a journal was left (exit \(r.status))")
                }
            }
        }
        print("full-disk outcomes (free blocks: result): \(outcomes.sorted { $0.key < $1.key }.map { "\($0.key) [\($0.value.joined(separator: " "))]" }.joined(separator: "; "))")
    }
}
