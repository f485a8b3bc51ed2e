import CPCRE2

/// A compiled PCRE2 pattern (JIT-compiled where the platform allows), safe to share between threads:
/// the compiled code is immutable and every match uses its own match data.
public final class Regex: @unchecked Sendable {
    public struct Options: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let caseInsensitive = Options(rawValue: UInt32(PCRE2_CASELESS))
        public static let multiline = Options(rawValue: UInt32(PCRE2_MULTILINE))
        public static let dotAll = Options(rawValue: UInt32(PCRE2_DOTALL))
        public static let anchored = Options(rawValue: UInt32(PCRE2_ANCHORED))
        public static let utf = Options(rawValue: UInt32(PCRE2_UTF))
    }

    /// Limits that stop catastrophic backtracking; hitting one is an error, never a silent miss.
    public struct Limits: Sendable {
        public var match: UInt32
        public var depth: UInt32
        public var heapKiB: UInt32
        public init(match: UInt32 = 1_000_000, depth: UInt32 = 10_000, heapKiB: UInt32 = 20_480) {
            self.match = match
            self.depth = depth
            self.heapKiB = heapKiB
        }
    }

    public let pattern: String
    private let code: OpaquePointer
    private let context: OpaquePointer?
    public let captureCount: Int
    public let jitCompiled: Bool

    /// Compiles `pattern`; a syntax error throws `RegexError` carrying PCRE2's message and offset.
    public init(_ pattern: String, options: Options = [], limits: Limits = Limits()) throws(RegexError) {
        self.pattern = pattern
        var errorCode: Int32 = 0
        var errorOffset = 0
        let bytes = Array(pattern.utf8)
        let compiled = bytes.withUnsafeBufferPointer { buf in
            pcre2_compile_8(
                buf.baseAddress, buf.count, options.rawValue | UInt32(PCRE2_UTF), &errorCode, &errorOffset, nil)
        }
        guard let compiled else {
            throw RegexError(message: Regex.message(for: errorCode), offset: errorOffset)
        }
        code = compiled
        jitCompiled = pcre2_jit_compile_8(compiled, UInt32(PCRE2_JIT_COMPLETE)) == 0
        var captures: UInt32 = 0
        pcre2_pattern_info_8(compiled, UInt32(PCRE2_INFO_CAPTURECOUNT), &captures)
        captureCount = Int(captures)
        let ctx = pcre2_match_context_create_8(nil)
        if let ctx {
            pcre2_set_match_limit_8(ctx, limits.match)
            pcre2_set_depth_limit_8(ctx, limits.depth)
            pcre2_set_heap_limit_8(ctx, limits.heapKiB)
        }
        context = ctx
    }

    deinit {
        pcre2_code_free_8(code)
        if let context { pcre2_match_context_free_8(context) }
    }

    /// The byte ranges of the whole match (index 0) and of each capture group (nil when unset).
    public typealias Match = [Range<Int>?]

    /// Matches `subject` from `start`; `anchored` requires the match to begin exactly there.
    public func firstMatch(in subject: UnsafeBufferPointer<UInt8>, from start: Int = 0, anchored: Bool = false)
        throws(RegexError) -> Match?
    {
        guard let data = pcre2_match_data_create_from_pattern_8(code, nil) else {
            throw RegexError(message: "out of memory", offset: 0)
        }
        defer { pcre2_match_data_free_8(data) }
        let opts: UInt32 = anchored ? UInt32(PCRE2_ANCHORED) : 0
        let zero: [UInt8] = [0]
        let rc = zero.withUnsafeBufferPointer { z in
            pcre2_match_8(code, subject.baseAddress ?? z.baseAddress!, subject.count, start, opts, data, context)
        }
        if rc == PCRE2_ERROR_NOMATCH { return nil }
        if rc < 0 { throw RegexError(message: Regex.message(for: rc), offset: start, limitHit: true) }
        let ovector = pcre2_get_ovector_pointer_8(data)!
        var out: Match = []
        out.reserveCapacity(captureCount + 1)
        for i in 0...captureCount {
            let lo = ovector[2 * i]
            let hi = ovector[2 * i + 1]
            out.append(lo == ~0 ? nil : Int(lo)..<Int(hi))
        }
        return out
    }

    /// Whether `subject` contains a match, reusing the caller's scratch space (no allocation per call).
    /// A match, depth, heap or JIT stack limit throws with `limitHit` set.
    public func matches(in subject: UnsafeBufferPointer<UInt8>, scratch: Scratch) throws(RegexError) -> Bool {
        let zero: [UInt8] = [0]
        let rc = zero.withUnsafeBufferPointer { z in
            pcre2_match_8(code, subject.baseAddress ?? z.baseAddress!, subject.count, 0, 0, scratch.data, context)
        }
        if rc == PCRE2_ERROR_NOMATCH { return false }
        if rc < 0 { throw RegexError(message: Regex.message(for: rc), offset: 0, limitHit: true) }
        return true
    }

    /// Match data for `matches(in:scratch:)`: one per thread of evaluation.
    public final class Scratch {
        fileprivate let data: OpaquePointer
        public init() { data = pcre2_match_data_create_8(1, nil)! }
        deinit { pcre2_match_data_free_8(data) }
    }

    public func firstMatch(in subject: String, anchored: Bool = false) throws(RegexError) -> Match? {
        var copy = subject
        let result = copy.withUTF8 { buf in
            Result { () throws(RegexError) -> Match? in try firstMatch(in: buf, anchored: anchored) }
        }
        return try result.get()
    }

    static func message(for code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = pcre2_get_error_message_8(code, &buffer, buffer.count)
        if n < 0 { return "PCRE2 error \(code)" }
        return String(decoding: buffer[0..<Int(n)], as: UTF8.self)
    }
}

/// A PCRE2 compile or match failure: the library's message and the byte offset in the pattern.
public struct RegexError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let offset: Int
    /// True when a match, depth or heap limit (or another run-time error) stopped the match.
    public let limitHit: Bool
    public init(message: String, offset: Int, limitHit: Bool = false) {
        self.message = message
        self.offset = offset
        self.limitHit = limitHit
    }
    public var description: String { limitHit ? "regex match aborted: \(message)" : "\(message) at offset \(offset)" }
}
