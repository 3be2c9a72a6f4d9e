import Foundation
import Testing

/// The map digest of a note as Tools/c-decoder/p2mdecode.c computes it: a decoder written in C
/// from Spec/p2mnote.md alone, sharing no code with the Swift codec (its own XXH64 and
/// canonicaliser). It accepts a note only if rule 15 holds (the digest it computes from the
/// note's entries equals the header's), so a generated dump's test that compares this with the
/// generator's digest does not lean on the MapDigester under test alone.
public func independentMapDigest(ofElfNote note: [UInt8]) throws -> UInt64 {
    let exe = try IndependentDecoder.build()
    let file = NSTemporaryDirectory() + "p2mnote-c-\(UUID().uuidString).note"
    FileManager.default.createFile(atPath: file, contents: Data(note))
    defer { try? FileManager.default.removeItem(atPath: file) }
    let r = try runTool([exe, file])
    guard r.status == 0 else { Issue.record("the C decoder refused the note: \(r.stderr)"); throw CancellationError() }
    guard let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
          let h = j["header"] as? [String: Any], let s = h["map_digest"] as? String, let v = UInt64(s.dropFirst(2), radix: 16) else {
        Issue.record("the C decoder printed no map_digest: \(r.stdout.prefix(300))"); throw CancellationError()
    }
    return v
}

enum IndependentDecoder {
    nonisolated(unsafe) private static var built: String?
    private static let lock = NSLock()

    /// Compile p2mdecode once per test process.
    static func build() throws -> String {
        lock.lock(); defer { lock.unlock() }
        if let b = built { return b }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let src = root.appendingPathComponent("Tools/c-decoder/p2mdecode.c").path
        let exe = NSTemporaryDirectory() + "p2mdecode-\(getpid())"
        let cc = try runTool(["cc", "-O1", "-Wall", "-Werror", "-o", exe, src, "-llz4"])
        guard cc.status == 0 else { Issue.record("REQUIRED: compiling the C decoder failed: \(cc.stderr)"); throw CancellationError() }
        built = exe
        return exe
    }
}
