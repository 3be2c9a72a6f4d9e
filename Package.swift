// swift-tools-version:5.9
// p2mnote: carry a Xen PV guest's p2m (pfn→mfn table) in an ELF note so that
// dumps of Linux ≥ 3.19 PV guests can be read without recursive translation.
//
// Layers, lowest first (each its own target; a layer imports only those below it):
//   CLZ4, CLibElf   system libraries (liblz4, elfutils libelf) through pkg-config
//   P2MFormat       pure format: address types, p2m model, run codec, note encode/decode (no file I/O)
//   DumpIO          dump files: ELF kdump vmcores and xl dump-core files read via libelf, writers
//   Translation     address translation: machine-memory page walk, p2m sources, symbols, kernel layout
//   GuestReader     the reader core: one guest of a dump opened once (symbols, p2m, reads in three
//                   address spaces), the session's commands with Codable results, the version
//   P2MTools        the tools over it: emit / inject / extract / analyze, argument parsing, the prompt
//   p2m-*           thin command-line executables over P2MTools
//   LibP2MNote      libp2mnote.so: the C interface (CP2MNote's include/p2mnote.h) over GuestReader;
//                   it links no argument parser and no line editor
//   Tools/*         test-dump generator and benchmarks
import PackageDescription

// -static-stdlib links libswiftCore.a into the shared library, but the archives the static
// Foundation needs in turn (its autolink entries sit in archive members, which swiftc does not
// read) must be named, in a group so that their order does not matter. Checked by loading the
// library with LD_BIND_NOW=1 (Tests/LibP2MNoteTests).
let staticRuntimeGroup = ["--start-group", "-lFoundation", "-lFoundationInternationalization", "-lFoundationEssentials",
                          "-l_FoundationICU", "-l_FoundationCShims", "-l_FoundationCollections", "-lCoreFoundation",
                          "-lswiftSynchronization", "-lswift_Concurrency", "-lswiftDispatch", "-ldispatch", "-lBlocksRuntime",
                          "-lswift_RegexParser", "-lswift_StringProcessing", "-lswiftCore", "--end-group"].flatMap { ["-Xlinker", $0] }

let package = Package(
    name: "p2mnote",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "p2m-emit", targets: ["p2m-emit"]),
        .executable(name: "p2m-inject", targets: ["p2m-inject"]),
        .executable(name: "p2m-extract", targets: ["p2m-extract"]),
        .executable(name: "p2m-analyze", targets: ["p2m-analyze"]),
        .executable(name: "p2m-gendump", targets: ["p2m-gendump"]),
        .executable(name: "p2m-bench", targets: ["p2m-bench"]),
        // libp2mnote.so, with the Swift runtime linked in: C and Python callers need nothing else.
        .library(name: "p2mnote", type: .dynamic, targets: ["LibP2MNote"]),
        // The toolkit as Swift modules, for Swift callers and for Tools/fuzz (its own package,
        // built only with the fuzzer sanitizer).
        .library(name: "P2MNoteKit", targets: ["P2MFormat", "DumpIO", "Translation", "GuestReader", "P2MTools"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CLZ4", path: "Sources/CLZ4", pkgConfig: "liblz4",
                       providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CLibElf", path: "Sources/CLibElf", pkgConfig: "libelf",
                       providers: [.apt(["libelf-dev"])]),
        .systemLibrary(name: "CXXHash", path: "Sources/CXXHash", pkgConfig: "libxxhash",
                       providers: [.apt(["libxxhash-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLZO", path: "Sources/CLZO", pkgConfig: "lzo2",
                       providers: [.apt(["liblzo2-dev"])]),
        .systemLibrary(name: "CSnappy", path: "Sources/CSnappy", pkgConfig: "snappy",
                       providers: [.apt(["libsnappy-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CDW", path: "Sources/CDW", pkgConfig: "libdw",
                       providers: [.apt(["libdw-dev"])]),
        .systemLibrary(name: "CEdit", path: "Sources/CEdit", pkgConfig: "libedit",
                       providers: [.apt(["libedit-dev"])]),

        .target(name: "P2MFormat", dependencies: ["CLZ4", "CXXHash"]),
        .target(name: "DumpIO", dependencies: ["P2MFormat", "CLibElf", "CZlib", "CLZO", "CSnappy", "CZstd"]),
        .target(name: "Translation", dependencies: ["P2MFormat", "DumpIO", "CDW"]),
        .target(name: "GuestReader", dependencies: ["P2MFormat", "DumpIO", "Translation"]),
        .target(name: "P2MTools", dependencies: [
            "P2MFormat", "DumpIO", "Translation", "GuestReader", "CEdit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "CP2MNote", path: "Sources/CP2MNote", exclude: ["libp2mnote.map"]),
        .target(name: "LibP2MNote", dependencies: ["CP2MNote", "GuestReader", "Translation", "DumpIO", "P2MFormat"],
                linkerSettings: [.unsafeFlags(["-static-stdlib"] + staticRuntimeGroup +
                                              ["-Xlinker", "--version-script=\(Context.packageDirectory)/Sources/CP2MNote/libp2mnote.map"])]),
        .executableTarget(name: "p2m-emit", dependencies: ["P2MTools"]),
        .executableTarget(name: "p2m-inject", dependencies: ["P2MTools"]),
        .executableTarget(name: "p2m-extract", dependencies: ["P2MTools"]),
        .executableTarget(name: "p2m-analyze", dependencies: ["P2MTools"]),

        // Tools/: the test-dump generator (a library so tests call it in-process) and benchmarks.
        .target(name: "DumpGen", dependencies: ["P2MFormat", "CZlib", "CLZO", "CSnappy", "CZstd"], path: "Tools/DumpGen"),
        .executableTarget(name: "p2m-gendump", dependencies: [
            "DumpGen", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Tools/gendump"),
        .executableTarget(name: "p2m-bench", dependencies: [
            "P2MFormat", "DumpIO", "Translation", "GuestReader", "P2MTools", "DumpGen",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], path: "Tools/bench", exclude: ["c"]),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "P2MFormatTests", dependencies: ["P2MFormat", "TestSupport", "DumpGen"]),
        .testTarget(name: "DumpIOTests", dependencies: ["TestSupport", "DumpIO", "DumpGen", "P2MFormat", "CZlib"]),
        .testTarget(name: "TranslationTests", dependencies: ["TestSupport", "Translation", "DumpIO", "DumpGen", "P2MFormat"]),
        .testTarget(name: "P2MToolsTests", dependencies: ["TestSupport", "P2MTools", "GuestReader", "DumpGen", "Translation", "DumpIO", "P2MFormat"]),
        .testTarget(name: "DumpGenTests", dependencies: ["TestSupport", "DumpGen", "P2MFormat"]),
        .testTarget(name: "LibP2MNoteTests", dependencies: ["TestSupport", "DumpGen"], exclude: ["c"]),
        .testTarget(name: "RealDumpTests", dependencies: ["TestSupport", "P2MTools", "GuestReader", "Translation", "DumpIO", "P2MFormat"]),
    ]
)
