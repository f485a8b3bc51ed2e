import Crypto
import Foundation

/// C2SP signed-note keys and signatures with Ed25519 (algorithm byte 0x01). The key id is the first four bytes of
/// SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key); the verifier key text is `name+hexid+base64(0x01 ‖ key)`, the signer
/// key text `PRIVATE+KEY+name+hexid+base64(0x01 ‖ seed)`.
public struct NoteSigner: @unchecked Sendable {
    public let name: String
    let key: Curve25519.Signing.PrivateKey

    public init(name: String, key: Curve25519.Signing.PrivateKey = Curve25519.Signing.PrivateKey()) throws(AuditError) {
        guard NoteVerifier.validName(name) else { throw .key("a key name is non-empty, without spaces or '+'") }
        self.name = name
        self.key = key
    }

    /// Parses `PRIVATE+KEY+name+hexid+base64`.
    public init(text: String) throws(AuditError) {
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(
            separator: "+", maxSplits: 4, omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY",
            let raw = Data(base64Encoded: String(parts[4])), raw.count == 33, raw.first == 0x01,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw.dropFirst())
        else { throw .key("not a signed-note Ed25519 private key (PRIVATE+KEY+name+id+key)") }
        try self.init(name: String(parts[2]), key: key)
        guard String(parts[3]) == NoteVerifier.hex(keyID) else {
            throw .key("private key id does not match its name and key")
        }
    }

    public var keyID: [UInt8] { NoteVerifier.keyID(name: name, publicKey: Array(key.publicKey.rawRepresentation)) }

    public var text: String {
        "PRIVATE+KEY+\(name)+\(NoteVerifier.hex(keyID))+" + Data([0x01] + key.rawRepresentation).base64EncodedString()
    }

    public var verifier: NoteVerifier {
        NoteVerifier(name: name, publicKey: Array(key.publicKey.rawRepresentation))
    }

    /// The note: the text (ending in a newline), a blank line, and one signature line.
    public func sign(_ text: String) throws(AuditError) -> String {
        guard text.hasSuffix("\n") else { throw .note("a note's text ends with a newline") }
        guard let sig = try? key.signature(for: Data(text.utf8)) else { throw .note("signing failed") }
        return text + "\n— \(name) " + Data(keyID + Array(sig)).base64EncodedString() + "\n"
    }
}

public struct NoteVerifier: Sendable, Equatable {
    public let name: String
    public let publicKey: [UInt8]

    public init(name: String, publicKey: [UInt8]) {
        self.name = name
        self.publicKey = publicKey
    }

    /// Parses `name+hexid+base64(0x01 ‖ key)`.
    public init(text: String) throws(AuditError) {
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(
            separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, Self.validName(String(parts[0])), let raw = Data(base64Encoded: String(parts[2])),
            raw.count == 33, raw.first == 0x01
        else { throw .key("not a signed-note Ed25519 verifier key (name+id+key)") }
        self.init(name: String(parts[0]), publicKey: Array(raw.dropFirst()))
        guard String(parts[1]) == Self.hex(keyID) else { throw .key("verifier key id does not match its name and key") }
    }

    /// C2SP/x/mod: non-empty, no '+', no White_Space — judged per Unicode scalar, as Go does, not per character (a
    /// combining mark after '+' or a prepended mark before a space would hide them in one character).
    static func validName(_ n: String) -> Bool {
        !n.isEmpty && n.unicodeScalars.allSatisfy { $0 != "+" && !$0.properties.isWhitespace && $0.value > 0x20 }
    }

    static func keyID(name: String, publicKey: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(data: Array(name.utf8) + [0x0A, 0x01] + publicKey)
        return Array(h.finalize().prefix(4))
    }

    static func hex(_ b: [UInt8]) -> String { hexString(b) }

    public var keyID: [UInt8] { Self.keyID(name: name, publicKey: publicKey) }

    public var text: String { "\(name)+\(Self.hex(keyID))+" + Data([0x01] + publicKey).base64EncodedString() }

    /// Opens a signed note: returns its text when a signature line by this key verifies.
    public func open(_ note: String) throws(AuditError) -> String { try open(bytes: Array(note.utf8)) }

    /// Opens a signed note per C2SP signed-note, accepting exactly what golang.org/x/mod/sumdb/note's `Open`
    /// accepts with this one key known: valid UTF-8 without control characters other than newline; the text, a
    /// blank line, then signature lines `— name base64(keyid ‖ signature)`, every one well formed (at most 100);
    /// signatures by other keys are passed over, one by this key must verify, and at least one must be by it.
    public func open(bytes msg: [UInt8]) throws(AuditError) -> String {
        guard msg.allSatisfy({ $0 >= 0x20 || $0 == 0x0A }), String(validating: msg, as: UTF8.self) != nil else {
            throw .note("a note is UTF-8 text without control characters")
        }
        var split = -1
        var k = msg.count - 2
        while k >= 0 {
            if msg[k] == 0x0A && msg[k + 1] == 0x0A {
                split = k
                break
            }
            k -= 1
        }
        guard split >= 0 else { throw .note("no signature block") }
        let textBytes = msg[...split]
        let sigs = msg[(split + 2)...]
        guard let lastByte = sigs.last, lastByte == 0x0A else { throw .note("malformed signature block") }
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else {
            throw .key("bad public key")
        }
        let dash: [UInt8] = [0xE2, 0x80, 0x94, 0x20]  // "— "
        let myID = keyID
        var count = 0
        var verified = false
        var rest = sigs[...]
        while let nl = rest.firstIndex(of: 0x0A) {
            let line = rest[..<nl]
            rest = rest[(nl + 1)...]
            guard line.starts(with: dash) else { throw .note("malformed signature line") }
            let body = line.dropFirst(dash.count)
            let space = body.firstIndex(of: 0x20) ?? body.endIndex
            let nameBytes = body[..<space]
            let b64 = space == body.endIndex ? body[space...] : body[(space + 1)...]
            guard let name = String(validating: nameBytes, as: UTF8.self), Self.validName(name), !b64.isEmpty,
                let raw = StandardBase64.decode(b64), raw.count >= 5
            else { throw .note("malformed signature line") }
            count += 1
            guard count <= 100 else { throw .note("more than 100 signatures") }
            // Names compared byte for byte, as Go does (not by canonical equivalence, as Swift strings are).
            guard nameBytes.elementsEqual(self.name.utf8), Array(raw.prefix(4)) == myID else { continue }
            if verified { continue }  // the same key again: x/mod keeps the first
            guard key.isValidSignature(raw.dropFirst(4), for: Data(textBytes)) else {
                throw .note("signature by \(name) does not verify")
            }
            verified = true
        }
        guard verified else { throw .note("no signature by \(name)+\(Self.hex(myID))") }
        return String(decoding: textBytes, as: UTF8.self)
    }
}

/// RFC 4648 base64 with the standard alphabet and padding, as Go's `base64.StdEncoding` reads it (padding
/// required; unused low bits of the last quantum are not checked).
enum StandardBase64 {
    static func decode(_ s: some Collection<UInt8>) -> [UInt8]? {
        guard s.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(s.count / 4 * 3)
        var quad: [UInt8] = []
        var ended = false
        for c in s {
            if ended { return nil }
            quad.append(c)
            guard quad.count == 4 else { continue }
            var v: UInt32 = 0
            var pad = 0
            for (i, q) in quad.enumerated() {
                if q == UInt8(ascii: "=") {
                    guard i >= 2 else { return nil }
                    pad += 1
                    continue
                }
                guard pad == 0, let d = value(q) else { return nil }
                v |= UInt32(d) << (18 - 6 * UInt32(i))
            }
            out.append(UInt8(v >> 16))
            if pad < 2 { out.append(UInt8((v >> 8) & 0xFF)) }
            if pad < 1 { out.append(UInt8(v & 0xFF)) }
            if pad > 0 { ended = true }
            quad.removeAll(keepingCapacity: true)
        }
        return out
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}

/// A C2SP tlog-checkpoint: origin, tree size, base64 root hash, each on its own line.
public struct Checkpoint: Sendable, Equatable {
    public var origin: String
    public var size: Int
    public var root: Hash

    public init(origin: String, size: Int, root: Hash) {
        self.origin = origin
        self.size = size
        self.root = root
    }

    public var text: String { "\(origin)\n\(size)\n\(Data(root).base64EncodedString())\n" }

    /// Parses a checkpoint body (extension lines after the third are allowed and ignored).
    public init(text: String) throws(AuditError) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 4, !lines[0].isEmpty, let n = Int(lines[1]), n >= 0, String(n) == lines[1],
            let root = StandardBase64.decode(lines[2].utf8), root.count == 32
        else { throw .note("not a tlog checkpoint (origin, size, root hash)") }
        self.init(origin: String(lines[0]), size: n, root: Array(root))
    }
}

/// An audit failure.
public struct AuditError: Error, CustomStringConvertible, Sendable {
    private enum Kind: Sendable {
        case key(String)
        case note(String)
        case verify(String)
        case storage(String)
    }
    private let kind: Kind
    public static func key(_ m: String) -> AuditError { AuditError(kind: .key(m)) }
    public static func note(_ m: String) -> AuditError { AuditError(kind: .note(m)) }
    public static func verify(_ m: String) -> AuditError { AuditError(kind: .verify(m)) }
    public static func storage(_ m: String) -> AuditError { AuditError(kind: .storage(m)) }
    public var description: String {
        switch kind {
        case .key(let m), .note(let m), .verify(let m), .storage(let m): m
        }
    }
}
