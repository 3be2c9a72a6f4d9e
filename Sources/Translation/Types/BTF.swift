// The kernel's own type information: BTF, which Linux built with CONFIG_DEBUG_INFO_BTF keeps in
// memory between __start_BTF and __stop_BTF (Debian 12's 6.1 and Debian 13's 6.12 both do), so a
// dump carries its kernel's struct layouts. Format: include/uapi/linux/btf.h: a header
// {u16 magic 0xeB9F, u8 version 1, u8 flags, u32 hdr_len, u32 type_off, type_len, str_off,
// str_len} (offsets from the header's end), then the types, numbered from 1 in order: each
// {u32 name_off, u32 info (vlen bits 0–15, kind bits 24–28, kind_flag bit 31), u32 size|type}
// followed by its kind's data. Every read is bounds-checked: this comes from a crashed machine.
import Foundation
import P2MFormat

public struct BTF: TypeLayouts {
    public enum Kind: UInt32, Sendable {
        case int = 1, ptr, array, structure, union, enumeration, fwd, typedef, volatile, const, restrict,
             function, functionProto, variable, dataSection, float, declTag, typeTag, enum64
    }
    public struct Member: Sendable { public var name: String; public var type: UInt32; public var bitOffset: UInt32 }
    public struct TypeInfo: Sendable {
        public var kind: Kind
        public var name: String
        /// size for int, enum, struct, union, datasec; the referenced type for the others.
        public var sizeOrType: UInt32
        public var members: [Member] = []
        /// For arrays: element type and count.
        public var array: (element: UInt32, count: UInt32)?
    }

    /// Types by id (index 0 is void).
    public private(set) var types: [TypeInfo?] = [nil]
    private var byName: [String: [UInt32]] = [:]
    public let origin: String

    public init(_ b: [UInt8], source: String) throws {
        origin = source
        func fail(_ m: String) -> TranslationError { TranslationError("\(source): BTF: \(m)", kind: .other) }
        func u32(_ o: Int) throws -> UInt32 {
            guard o >= 0, o + 4 <= b.count else { throw fail("read past its end at \(o)") }
            return UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24
        }
        guard b.count >= 24, b[0] == 0x9f, b[1] == 0xeb else { throw fail("no BTF magic 0xeB9F") }
        guard b[2] == 1 else { throw fail("version \(b[2]), not 1") }
        let hdr = Int(try u32(4)), typeOff = Int(try u32(8)), typeLen = Int(try u32(12)), strOff = Int(try u32(16)), strLen = Int(try u32(20))
        let types = hdr + typeOff, strs = hdr + strOff
        guard hdr >= 24, typeLen >= 0, types + typeLen <= b.count, strs + strLen <= b.count else { throw fail("sections past its \(b.count) bytes") }
        func name(_ off: UInt32) -> String {
            let o = strs + Int(off)
            guard Int(off) < strLen else { return "" }
            var e = o
            while e < strs + strLen, b[e] != 0 { e += 1 }
            return String(decoding: b[o..<e], as: UTF8.self)
        }
        var p = types
        let end = types + typeLen
        while p < end {
            guard self.types.count < 1 << 20 else { throw fail("more than 2^20 types") }
            let nameOff = try u32(p), info = try u32(p + 4), st = try u32(p + 8)
            p += 12
            let vlen = Int(info & 0xffff), kflag = info >> 31
            guard let kind = Kind(rawValue: (info >> 24) & 0x1f) else { throw fail("unknown kind \((info >> 24) & 0x1f) at \(p - 12)") }
            var t = TypeInfo(kind: kind, name: name(nameOff), sizeOrType: st)
            switch kind {
            case .int, .variable, .declTag: p += 4
            case .array:
                t.array = (try u32(p), try u32(p + 8)); p += 12
            case .structure, .union:
                for i in 0..<vlen {
                    let q = p + 12 * i
                    let off = try u32(q + 8)
                    t.members.append(Member(name: name(try u32(q)), type: try u32(q + 4), bitOffset: kflag != 0 ? off & 0xff_ffff : off))
                }
                p += 12 * vlen
            case .enumeration, .functionProto: p += 8 * vlen
            case .dataSection, .enum64: p += 12 * vlen
            case .ptr, .fwd, .typedef, .volatile, .const, .restrict, .function, .float, .typeTag: break
            }
            guard p <= end else { throw fail("type \(self.types.count) runs past the type section") }
            byName[t.name, default: []].append(UInt32(self.types.count))
            self.types.append(t)
        }
    }

    public func type(_ id: UInt32) -> TypeInfo? { Int(id) < types.count ? types[Int(id)] : nil }

    /// A type without typedefs and qualifiers.
    public func resolved(_ id: UInt32) -> (id: UInt32, type: TypeInfo)? {
        var id = id
        for _ in 0..<32 {
            guard let t = type(id) else { return nil }
            switch t.kind {
            case .typedef, .volatile, .const, .restrict, .typeTag: id = t.sizeOrType
            default: return (id, t)
            }
        }
        return nil
    }

    /// The struct (or union) of that name with members (not a forward declaration).
    public func structure(_ name: String) -> (id: UInt32, type: TypeInfo)? {
        for id in byName[name] ?? [] {
            if let t = type(id), t.kind == .structure || t.kind == .union { return (id, t) }
        }
        return nil
    }

    /// Size in bytes of a type (arrays: element size times count; pointers: 8).
    public func size(_ id: UInt32, depth: Int = 0) -> UInt64? {
        // A damaged BTF can make an array its own element: bounded, never a stack overflow.
        guard depth < 32, let (_, t) = resolved(id) else { return nil }
        switch t.kind {
        case .int, .structure, .union, .enumeration, .enum64, .float, .dataSection: return UInt64(t.sizeOrType)
        case .ptr: return 8
        case .array:
            guard let a = t.array, let e = size(a.element, depth: depth + 1) else { return nil }
            return e.multipliedReportingOverflow(by: UInt64(a.count)).overflow ? nil : e * UInt64(a.count)
        default: return nil
        }
    }

    /// A member's byte offset and type, by a dotted path ("core_layout.size"), through nested and
    /// anonymous structs and unions.
    public func member(of structure: String, _ path: String) -> (offset: UInt64, type: UInt32)? {
        guard let (id, _) = self.structure(structure) else { return nil }
        var current = id
        var offset: UInt64 = 0
        for part in path.split(separator: ".") {
            guard let found = find(String(part), in: current) else { return nil }
            offset += found.offset
            current = found.type
        }
        return (offset, current)
    }

    private func find(_ name: String, in id: UInt32, depth: Int = 0) -> (offset: UInt64, type: UInt32)? {
        guard depth < 32, let (_, t) = resolved(id), t.kind == .structure || t.kind == .union else { return nil }
        for m in t.members where m.name == name { return (UInt64(m.bitOffset / 8), m.type) }
        // Anonymous members hold theirs.
        for m in t.members where m.name.isEmpty {
            if let inner = find(name, in: m.type, depth: depth + 1) { return (UInt64(m.bitOffset / 8) + inner.offset, inner.type) }
        }
        return nil
    }
}

extension BTF {
    public func member(_ path: String, of structure: String) -> MemberLayout? {
        guard let m = member(of: structure, path) else { return nil }
        var out = MemberLayout(offset: m.offset, size: size(m.type))
        if let (_, t) = resolved(m.type), let a = t.array, let e = size(a.element) {
            out.count = UInt64(a.count); out.stride = e
        }
        return out
    }

    public func size(of structure: String) -> UInt64? {
        guard let (id, _) = self.structure(structure) else { return nil }
        return size(id)
    }
}
