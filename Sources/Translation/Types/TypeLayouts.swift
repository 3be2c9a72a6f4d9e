// Struct layouts from type information. Kernels and Xens differ from build to build, so the
// offsets a reader uses come from the build's own types: a kernel's BTF (in the dump), a vmlinux's
// or a xen-syms' DWARF (given by the user); never from another build's numbers.

/// One member of a struct as a path ("arch.user_regs") resolves to: where it is, how big it is
/// and, for an array, how many elements of what stride.
public struct MemberLayout: Sendable, Equatable {
    public var offset: UInt64
    public var size: UInt64?
    public var count: UInt64?
    public var stride: UInt64?
    public init(offset: UInt64, size: UInt64?, count: UInt64? = nil, stride: UInt64? = nil) {
        self.offset = offset; self.size = size; self.count = count; self.stride = stride
    }
}

/// A source of struct layouts for one build.
public protocol TypeLayouts: Sendable {
    /// Where the layouts come from, for people ("the kernel's BTF in the dump", "DWARF of FILE").
    var origin: String { get }
    /// A member by a dotted path through nested and anonymous structs and unions.
    func member(_ path: String, of structure: String) -> MemberLayout?
    /// A struct's size in bytes.
    func size(of structure: String) -> UInt64?
}

extension TypeLayouts {
    /// The member, or an error naming the struct, the member and the source (kind .noLayout).
    public func need(_ path: String, of structure: String) throws -> MemberLayout {
        guard let m = member(path, of: structure) else {
            throw TranslationError("\(origin): struct \(structure) has no member \(path)", kind: .noLayout)
        }
        return m
    }
}
