// Struct layouts from a build's DWARF: a vmlinux (linux-image-*-dbg) or a xen-syms (Xen 4.20's
// -dbg package has one with DWARF; 4.17's ships only a symbol map), read with elfutils' libdw.
// libdw parses the debug information; this file only asks it for a struct by name, a member by a
// dotted path and their sizes, with every loop bounded: the file is the user's, possibly damaged.
import CDW
import Foundation

public final class DWARFTypes: TypeLayouts, @unchecked Sendable {
    public let origin: String
    private let fd: Int32
    private let dwarf: OpaquePointer
    /// Every struct definition seen so far by name (the first, not a declaration).
    private var structs: [String: Dwarf_Die] = [:]
    /// Where the lazy scan of the compile units stopped: a lookup reads on only until it finds its name.
    private var nextUnit: OpaquePointer?
    private var scanDone = false
    private var units = 0
    private let lock = NSLock()

    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TranslationError("\(path): cannot open: \(String(cString: strerror(errno)))", kind: .other) }
        guard let d = dwarf_begin(fd, DWARF_C_READ) else {
            let why = String(cString: dwarf_errmsg(-1))
            close(fd)
            throw TranslationError("\(path): no DWARF type information (\(why))", kind: .noLayout)
        }
        self.fd = fd; dwarf = d; origin = "DWARF of \(path)"
    }

    deinit { dwarf_end(dwarf); close(fd) }

    private func tag(_ d: inout Dwarf_Die) -> Int32 { dwarf_tag(&d) }
    private func name(_ d: inout Dwarf_Die) -> String? { dwarf_diename(&d).map { String(cString: $0) } }

    /// The DIE's children, at most `limit`.
    private func children(_ d: inout Dwarf_Die, limit: Int = 1 << 16) -> [Dwarf_Die] {
        var out: [Dwarf_Die] = []
        var c = Dwarf_Die()
        guard dwarf_child(&d, &c) == 0 else { return out }
        repeat {
            out.append(c)
            var n = Dwarf_Die()
            guard out.count < limit, dwarf_siblingof(&c, &n) == 0 else { break }
            c = n
        } while true
        return out
    }

    /// The struct's definition: from the index, else reading on through the compile units.
    private func structure(_ want: String) -> Dwarf_Die? {
        if let d = structs[want] { return d }
        while !scanDone {
            var next: OpaquePointer?
            var version: Dwarf_Half = 0
            var unitType: UInt8 = 0
            var cuDie = Dwarf_Die(), subDie = Dwarf_Die()
            guard units < 1 << 20, dwarf_get_units(dwarf, nextUnit, &next, &version, &unitType, &cuDie, &subDie) == 0 else { scanDone = true; break }
            nextUnit = next; units += 1
            for var c in children(&cuDie, limit: 1 << 22) where tag(&c) == DW_TAG_structure_type || tag(&c) == DW_TAG_union_type {
                guard dwarf_hasattr(&c, UInt32(DW_AT_declaration)) == 0, let n = name(&c), structs[n] == nil else { continue }
                structs[n] = c
            }
            if let d = structs[want] { return d }
        }
        return nil
    }

    /// The type a DIE refers to, without typedefs and qualifiers.
    private func type(of d: inout Dwarf_Die) -> Dwarf_Die? {
        var a = Dwarf_Attribute(), t = Dwarf_Die(), p = Dwarf_Die()
        guard dwarf_attr_integrate(&d, UInt32(DW_AT_type), &a) != nil, dwarf_formref_die(&a, &t) != nil, dwarf_peel_type(&t, &p) == 0 else { return nil }
        return p
    }

    private func byteSize(_ d: inout Dwarf_Die) -> UInt64? {
        var s: Dwarf_Word = 0
        return dwarf_aggregate_size(&d, &s) == 0 ? UInt64(s) : nil
    }

    /// A member of the struct or union `d` by name, through anonymous members: its offset and DIE.
    private func find(_ want: String, in d: inout Dwarf_Die, depth: Int = 0) -> (offset: UInt64, die: Dwarf_Die)? {
        guard depth < 8 else { return nil }
        let members = children(&d).filter { var m = $0; return tag(&m) == DW_TAG_member }
        func offset(_ m: inout Dwarf_Die) -> UInt64 {
            var a = Dwarf_Attribute(), v: Dwarf_Word = 0
            guard dwarf_attr(&m, UInt32(DW_AT_data_member_location), &a) != nil, dwarf_formudata(&a, &v) == 0 else { return 0 }  // a union's members
            return UInt64(v)
        }
        for var m in members where name(&m) == want { return (offset(&m), m) }
        for var m in members where name(&m) == nil {
            guard var t = type(of: &m), tag(&t) == DW_TAG_structure_type || tag(&t) == DW_TAG_union_type,
                  let inner = find(want, in: &t, depth: depth + 1) else { continue }
            return (offset(&m) &+ inner.offset, inner.die)
        }
        return nil
    }

    public func member(_ path: String, of structure: String) -> MemberLayout? {
        lock.lock(); defer { lock.unlock() }
        guard var current = self.structure(structure) else { return nil }
        var offset: UInt64 = 0
        var last: Dwarf_Die?
        for part in path.split(separator: ".").prefix(16) {
            if last != nil {   // descend into the previous member's struct type
                guard var l = last, let t = type(of: &l), tag(&current) != 0 else { return nil }
                current = t
            }
            guard let (o, m) = find(String(part), in: &current) else { return nil }
            offset = offset &+ o
            last = m
        }
        guard var m = last, var t = type(of: &m) else { return nil }
        var out = MemberLayout(offset: offset, size: byteSize(&t))
        if tag(&t) == DW_TAG_array_type, var e = type(of: &t), let stride = byteSize(&e), stride > 0, let total = out.size {
            out.stride = stride; out.count = total / stride
        }
        return out
    }

    public func size(of structure: String) -> UInt64? {
        lock.lock(); defer { lock.unlock() }
        guard var d = self.structure(structure) else { return nil }
        return byteSize(&d)
    }
}
