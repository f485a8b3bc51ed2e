// swift-tools-version: 6.1
// Tripline's fuzz targets as libFuzzer binaries (see README.md). Built from the parser modules only: no NIO.
//   swift build --package-path Fuzz -c release --product tripline-fuzz -Xswiftc -sanitize=fuzzer,address \
//     -Xswiftc -parse-as-library
import PackageDescription

/// The directory the main package sits in names it (a path dependency's identity is its directory's name).
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "main"

/// `TRIPLINE_FUZZ_HTTP=1`: the HTTP API's target too (the whole NIO and Hummingbird stack: `make fuzz` only).
let withHTTP = Context.environment["TRIPLINE_FUZZ_HTTP"] == "1"

let package = Package(
    name: "TriplineFuzz",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tripline-fuzz", targets: ["tripline-fuzz"]),
        .executable(name: "fuzz-budget", targets: ["fuzz-budget"]),
    ],
    dependencies: [.package(path: "..")],
    targets: [
        // Every target of `FuzzTargets.all` in one libFuzzer binary; `fuzz-NAME` links to it choose one.
        .executableTarget(
            name: "tripline-fuzz",
            dependencies: [.product(name: "TriplineFuzzing", package: root)]
                + (withHTTP ? [.product(name: "TriplineFuzzingHTTP", package: root)] : []),
            path: "Sources/tripline-fuzz", swiftSettings: withHTTP ? [.define("FUZZ_HTTP")] : []),
        // The record step's cost per input (release, no sanitizers): time and peak heap, with a counting allocator.
        .target(name: "CAllocationCounter", path: "Sources/CAllocationCounter"),
        .executableTarget(
            name: "fuzz-budget",
            dependencies: ["CAllocationCounter", .product(name: "TriplineFuzzing", package: root)],
            path: "Sources/fuzz-budget"),
    ],
    swiftLanguageModes: [.v6]
)
