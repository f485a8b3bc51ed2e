import Glibc
import TriplineFuzzing

#if FUZZ_HTTP
    import TriplineFuzzingHTTP
    private let candidates = FuzzTargets.all + [HTTPFuzzTarget.target]
#else
    private let candidates = FuzzTargets.all
#endif

/// The target this process fuzzes: named by the binary (`fuzz-json`, a link to `tripline-fuzz`) or by
/// `TRIPLINE_FUZZ_TARGET`.
nonisolated(unsafe) private var target: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>
) -> CInt {
    let program = argv.pointee[0].map { String(cString: $0) } ?? ""
    let base = program.split(separator: "/").last.map(String.init) ?? program
    var name = base.hasPrefix("fuzz-") ? String(base.dropFirst(5)) : nil
    if let env = getenv("TRIPLINE_FUZZ_TARGET") { name = String(cString: env) }
    guard let name, let t = candidates.first(where: { $0.name == name }) else {
        let names = candidates.map(\.name).joined(separator: ", ")
        print("tripline-fuzz: run as fuzz-NAME or with TRIPLINE_FUZZ_TARGET=NAME, NAME one of: \(names)")
        exit(2)
    }
    target = t
    // `TRIPLINE_FUZZ_DESCRIBE=1`: print the target's libFuzzer limits (max_len, timeout) for scripts/fuzz.sh.
    if getenv("TRIPLINE_FUZZ_DESCRIBE") != nil {
        print("\(t.maxLength) \(t.timeout)")
        exit(0)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzTargets.fuzz(target!, data, count)
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable's `main` to `<module>_main` (for testable executables) — the known trouble with
/// libFuzzer, whose `main` is then never used. This is that entry point: it hands over to libFuzzer's driver.
@_cdecl("tripline_fuzz_main")
public func fuzzMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
) -> CInt {
    var count = argc
    var arguments = Optional(argv)
    return withUnsafeMutablePointer(to: &arguments) { args in
        args.withMemoryRebound(to: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.self, capacity: 1) {
            runFuzzerDriver(&count, $0, fuzzOne)
        }
    }
}
