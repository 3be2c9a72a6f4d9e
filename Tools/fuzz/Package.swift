// swift-tools-version:5.9
// p2mnote's fuzz targets (libFuzzer), one per parser. A package of its own so that the main
// build never sees an executable without a main: `make fuzz` builds these with
// `--sanitize fuzzer --sanitize address` (Tools/fuzz/run) and runs each on its corpus.
import PackageDescription

let targets = ["note", "elf-vmcore", "xl-dump-core", "kdump-compressed", "flattened", "p2m-sources", "inject-plan"]

let package = Package(
    name: "p2mnote-fuzz",
    dependencies: [.package(name: "p2mnote", path: "../..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "P2MNoteKit", package: "p2mnote")]),
    ] + targets.map { t in
        .executableTarget(name: "fuzz-\(t)", dependencies: ["FuzzSupport"])
    }
)
