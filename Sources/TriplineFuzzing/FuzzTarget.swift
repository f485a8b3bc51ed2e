/// A property a fuzz target found broken: the fuzzer entry point turns it into a crash (an input to keep), the
/// replay tests into a failed expectation.
public struct FuzzFailure: Error, CustomStringConvertible {
    public var target: String
    public var message: String
    public var description: String { "\(target): \(message)" }
}

/// One fuzz target: a name (its corpus is `Fuzz/Corpus/<name>`), and a function of one input that returns when
/// the input is handled as specified, throws when a property fails, and traps only on a defect.
public struct FuzzTarget: Sendable {
    public let name: String
    /// libFuzzer's `-max_len` for it: the largest input that can matter (records are at most 64 KiB).
    public let maxLength: Int
    /// Seconds one input may take under the fuzzer (sanitizers on) before it counts as a hang.
    public let timeout: Int
    public let run: @Sendable ([UInt8]) throws(FuzzFailure) -> Void

    public init(
        name: String, maxLength: Int = 4096, timeout: Int = 5,
        run: @escaping @Sendable ([UInt8]) throws(FuzzFailure) -> Void
    ) {
        self.name = name
        self.maxLength = maxLength
        self.timeout = timeout
        self.run = run
    }

    /// Fails the property `what` unless `condition` holds.
    @inline(__always)
    public static func check(_ condition: Bool, _ target: String, _ what: @autoclosure () -> String)
        throws(FuzzFailure)
    {
        if !condition { throw FuzzFailure(target: target, message: what()) }
    }
}

/// Every parser of outside input Tripline has, as a fuzz target (SPEC §8: hostile input).
public enum FuzzTargets {
    public static let all: [FuzzTarget] = [
        JSONTargets.json, JSONTargets.ndjson, RecordTarget.record, YAMLTargets.yaml, YAMLTargets.watchlist,
        YAMLTargets.rules, YAMLTargets.condition, SelectorTargets.phone, SelectorTargets.email,
        SelectorTargets.normalize, SelectorTargets.name, WireTargets.smtpReply, WireTargets.note,
        WireTargets.auditBundle, AckLinkTarget.target,
    ]

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }

    /// The entry point of a libFuzzer binary: runs the target on one input; a failed property ends the process
    /// (libFuzzer keeps the input as a crash).
    public static func fuzz(_ target: FuzzTarget, _ data: UnsafePointer<UInt8>?, _ count: Int) {
        let bytes = count == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: count))
        do { try target.run(bytes) } catch { fatalError("property failed: \(error)") }
    }
}
