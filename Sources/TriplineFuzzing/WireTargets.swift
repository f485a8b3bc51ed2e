import TriplineAlerts
import TriplineAudit
import TriplineMailWire

/// What arrives over the wire: SMTP replies, signed notes and checkpoints, audit bundles.
enum WireTargets {
    /// The SMTP reply decoder, fed the input (after its first byte) whole, a byte at a time, and in pieces whose
    /// sizes the first byte seeds. Property: the replies, and the error that ends them, do not depend on the cuts.
    static let smtpReply = FuzzTarget(name: "smtp-reply", maxLength: 16384) { input throws(FuzzFailure) in
        guard let seed = input.first else { return }
        let bytes = Array(input.dropFirst())
        let whole = decode(bytes, cuts: [bytes.count])
        let single = decode(bytes, cuts: Array(repeating: 1, count: bytes.count))
        var state = UInt32(seed) &* 2_654_435_761 | 1
        var cuts: [Int] = []
        var total = 0
        while total < bytes.count {
            state = state &* 1_103_515_245 &+ 12345
            let n = Int(state >> 16) % 97 + 1
            cuts.append(n)
            total += n
        }
        let pieces = decode(bytes, cuts: cuts)
        try FuzzTarget.check(whole == single, "smtp-reply", "whole and byte by byte differ: \(whole) / \(single)")
        try FuzzTarget.check(whole == pieces, "smtp-reply", "whole and in pieces differ: \(whole) / \(pieces)")
    }

    struct Decoded: Equatable, CustomStringConvertible {
        var replies: [SMTPReply] = []
        var error: SMTPProtocolError?
        var description: String { "\(replies.map(\.description)) \(error.map { "\($0)" } ?? "")" }
    }

    static func decode(_ bytes: [UInt8], cuts: [Int]) -> Decoded {
        var d = SMTPReplyDecoder()
        var out = Decoded()
        var at = 0
        for n in cuts where at < bytes.count {
            d.append(bytes[at..<min(bytes.count, at + n)])
            at += n
            do {
                while let r = try d.next() { out.replies.append(r) }
            } catch {
                out.error = error
                return out
            }
        }
        return out
    }

    /// A signed note under the fixed key, then the C2SP checkpoint in it. Properties: an opened note's text signs
    /// and opens again to itself; a checkpoint read and written reads back the same.
    static let note = FuzzTarget(name: "note", maxLength: 4096) { bytes throws(FuzzFailure) in
        let verifier = FuzzFixtures.signer.verifier
        if let cp = try? Checkpoint(text: String(decoding: bytes, as: UTF8.self)) {
            let back = try? Checkpoint(text: cp.text)
            try FuzzTarget.check(back == cp, "note", "checkpoint \(cp.text.debugDescription) does not read back")
        }
        guard let text = try? verifier.open(bytes: bytes) else { return }
        let resigned: String
        do { resigned = try FuzzFixtures.signer.sign(text) } catch {
            throw FuzzFailure(target: "note", message: "an opened note's text cannot be signed: \(error)")
        }
        let reopened = try? verifier.open(resigned)
        try FuzzTarget.check(reopened == text, "note", "signed again, \(text.debugDescription) does not open")
    }

    /// An audit bundle: records, proofs and the signed checkpoint, separated by 0xFF bytes (never in UTF-8),
    /// verified against the fixed key.
    static let auditBundle = FuzzTarget(name: "audit-bundle", maxLength: 32768) { bytes throws(FuzzFailure) in
        let parts = bytes.split(separator: 0xFF, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return }
        _ = AuditBundle.verify(
            records: Array(parts[0]), proofs: Array(parts[1]), checkpoint: Array(parts[2]),
            vkey: FuzzFixtures.signer.verifier)
    }
}

/// Acknowledge-link tokens (SPEC §11): whatever the path holds, `verify` answers without trapping; what it accepts
/// was made with the key (the token is the canonical encoding of its claim), and an accepted claim is well formed.
enum AckLinkTarget {
    /// The fuzz key (the seeds in Fuzz/Corpus/ack-link are signed with it) and a fixed "now".
    static let links = AckLinks(
        baseURL: "https://tripline.example", key: Array("tripline-fuzz-ack-link-key-32byte".utf8))!
    static let now = 1_900_000_000.0

    static let target = FuzzTarget(name: "ack-link", maxLength: 2048) { bytes throws(FuzzFailure) in
        let token = String(decoding: bytes, as: UTF8.self)
        switch links.verify(token, now: now) {
        case .success(let c):
            try FuzzTarget.check(links.token(c) == token, "ack-link", "accepted a token that is not its claim's")
            try FuzzTarget.check(
                !c.receiver.isEmpty && !c.partner.isEmpty && c.nonce.count == 32 && c.expires > now, "ack-link",
                "accepted a malformed claim")
        case .failure(.expired):
            // Signed, only late: a token of ours whose claim is well formed.
            guard case .success(let c) = links.verify(token, now: 0) else {
                throw FuzzFailure(target: "ack-link", message: "expired now, not valid before")
            }
            try FuzzTarget.check(links.token(c) == token, "ack-link", "accepted a token that is not its claim's")
        case .failure(.invalid):
            break
        }
    }
}
