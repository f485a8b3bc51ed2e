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

    static func validName(_ n: String) -> Bool {
        !n.isEmpty && !n.contains(where: { $0 == "+" || $0.isWhitespace })
            && n.unicodeScalars.allSatisfy { $0.value > 0x20 }
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
    public func open(_ note: String) throws(AuditError) -> String {
        guard let split = note.range(of: "\n\n", options: .backwards) else { throw .note("no signature block") }
        let text = String(note[..<split.lowerBound]) + "\n"
        let sigs = note[split.upperBound...].split(separator: "\n")
        guard !sigs.isEmpty, note.hasSuffix("\n") else { throw .note("malformed signature block") }
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else {
            throw .key("bad public key")
        }
        for line in sigs {
            guard line.hasPrefix("— ") else { throw .note("malformed signature line") }
            let fields = line.dropFirst(2).split(separator: " ")
            guard fields.count == 2, let raw = Data(base64Encoded: String(fields[1])), raw.count >= 4 else {
                throw .note("malformed signature line")
            }
            if String(fields[0]) == name && Array(raw.prefix(4)) == keyID {
                guard key.isValidSignature(raw.dropFirst(4), for: Data(text.utf8)) else {
                    throw .note("signature by \(name) does not verify")
                }
                return text
            }
        }
        throw .note("no signature by \(name)+\(Self.hex(keyID))")
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
            let root = Data(base64Encoded: String(lines[2])), root.count == 32
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
