/// One SMTP reply: its code and its text lines (RFC 5321 §4.2; multi-line replies joined).
public struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    public var lines: [String]
    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }
    public var description: String { "\(code) " + lines.joined(separator: " / ") }
}

public struct SMTPProtocolError: Error, Equatable, CustomStringConvertible {
    /// What went wrong, in our words.
    public var message: String
    /// Server text quoted to explain it, if any: left out where a reply might echo a credential (AUTH).
    public var quoted: String?
    public init(_ message: String, quoting quoted: String? = nil) {
        self.message = message
        self.quoted = quoted
    }
    public var description: String { message + (quoted.map { " \"\($0)\"" } ?? "") }
}

/// Splits a server's bytes into replies (RFC 5321 §4.2): `ddd-text` lines continue a reply, `ddd text` or `ddd`
/// ends it, and every line of one reply carries the same code (§4.2.1). Each reply is bounded — at most
/// `maxLines` lines and `maxReplyBytes` bytes, lines of at most `maxLineBytes` — so a server cannot grow the
/// client's memory; beyond, or on a malformed line, a protocol error, after which the decoder is spent.
/// Input may arrive split anywhere: what `next` returns does not depend on how the bytes were cut.
public struct SMTPReplyDecoder: Sendable {
    public static let maxLineBytes = 8192
    public static let maxLines = 100
    public static let maxReplyBytes = 64 * 1024

    private var buffer: [UInt8] = []
    private var start = 0
    /// Where the search for the next line feed resumes (bytes before it hold none).
    private var scanned = 0
    private var lines: [String] = []
    private var code = 0
    private var replyBytes = 0

    public init() {}

    /// Bytes not yet read as part of a reply line.
    public var pendingBytes: Int { buffer.count - start }

    public mutating func append(_ bytes: some Sequence<UInt8>) { buffer.append(contentsOf: bytes) }

    /// Forgets everything buffered and any reply begun (STARTTLS: what came in clear is not read).
    public mutating func reset() {
        buffer = []
        spent = nil
        start = 0
        scanned = 0
        lines = []
        code = 0
        replyBytes = 0
    }

    /// The error that spent the decoder: `next` throws it again until `reset`.
    private var spent: SMTPProtocolError?

    /// The next complete reply, or nil until more bytes arrive.
    public mutating func next() throws(SMTPProtocolError) -> SMTPReply? {
        if let spent { throw spent }
        do { return try decode() } catch {
            spent = error
            throw error
        }
    }

    private mutating func decode() throws(SMTPProtocolError) -> SMTPReply? {
        while let nl = buffer[max(start, scanned)...].firstIndex(of: 0x0A) {
            let length = nl - start + 1
            guard length <= Self.maxLineBytes else {
                throw SMTPProtocolError("reply line longer than \(Self.maxLineBytes) bytes")
            }
            var end = nl
            while end > start, buffer[end - 1] == 0x0D || buffer[end - 1] == 0x0A { end -= 1 }
            let line = buffer[start..<end]
            start = nl + 1
            replyBytes += length
            if let reply = try take(line) {
                compact()
                return reply
            }
        }
        guard pendingBytes <= Self.maxLineBytes else {
            throw SMTPProtocolError("reply line longer than \(Self.maxLineBytes) bytes")
        }
        scanned = buffer.count
        compact()
        return nil
    }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            scanned = 0
            start = 0
        } else if start > 4096 && start * 2 > buffer.count {
            buffer.removeFirst(start)
            scanned = max(0, scanned - start)
            start = 0
        }
    }

    /// One line of a reply; the reply when it is the last.
    private mutating func take(_ bytes: ArraySlice<UInt8>) throws(SMTPProtocolError) -> SMTPReply? {
        let b = bytes.startIndex
        guard bytes.count >= 3, bytes.prefix(3).allSatisfy({ (0x30...0x39).contains($0) }),
            bytes.count == 3 || bytes[b + 3] == 0x20 || bytes[b + 3] == 0x2D
        else {
            throw SMTPProtocolError(
                "malformed reply line", quoting: String(decoding: bytes.prefix(80), as: UTF8.self))
        }
        let lineCode = bytes.prefix(3).reduce(0) { $0 * 10 + Int($1 - 0x30) }
        if lines.isEmpty {
            code = lineCode
        } else if lineCode != code {
            throw SMTPProtocolError("reply line with code \(lineCode) inside a \(code) reply")
        }
        lines.append(bytes.count > 4 ? String(decoding: bytes.dropFirst(4), as: UTF8.self) : "")
        if bytes.count == 3 || bytes[b + 3] == 0x20 {
            let reply = SMTPReply(code: code, lines: lines)
            lines = []
            replyBytes = 0
            return reply
        }
        guard lines.count < Self.maxLines, replyBytes <= Self.maxReplyBytes else {
            throw SMTPProtocolError(
                "reply longer than \(Self.maxLines) lines or \(Self.maxReplyBytes / 1024) KiB (not an SMTP server?)")
        }
        return nil
    }
}
