import Crypto
import Foundation

/// What an acknowledge link (SPEC §11) is good for: one alert, one receiver and its partner, until `expires`,
/// once (`nonce`, kept in the state database when used).
public struct AckLinkClaim: Sendable, Equatable {
    public var alertID: Int64
    public var receiver: String
    public var partner: String
    public var expires: Double
    public var nonce: String
    public init(alertID: Int64, receiver: String, partner: String, expires: Double, nonce: String) {
        self.alertID = alertID
        self.receiver = receiver
        self.partner = partner
        self.expires = expires
        self.nonce = nonce
    }
}

/// Why a link is refused: each gets its own page, and none says more than that.
public enum AckLinkError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not a token at all, or a signature that does not verify (also a token made with another key).
    case invalid
    case expired
    public var description: String {
        switch self {
        case .invalid: "this acknowledge link is not valid"
        case .expired: "this acknowledge link has expired"
        }
    }
}

/// Makes and checks acknowledge links: `external_url/v1/ack/TOKEN`, where TOKEN is
/// `base64url(claim) "." base64url(HMAC-SHA-256(link key, claim))` and the claim is five lines — `v1`, alert id,
/// receiver, partner, expiry (Unix seconds), nonce. Receiver and partner names come from the configuration and
/// never hold a line break.
public struct AckLinks: Sendable {
    public let baseURL: String
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }
    /// How long a link stays usable (SPEC §11: 24 h by default).
    public var lifetime: Double = 86_400
    /// The longest token accepted (a claim of two configuration names and numbers is far shorter).
    public static let maxTokenLength = 1_024

    /// `key`: the link key file's bytes (at least 32).
    public init?(baseURL: String, key: [UInt8]) {
        guard key.count >= 32 else { return nil }
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.keyBytes = key
    }

    /// A fresh claim for an alert and a receiver, expiring `lifetime` from `now`.
    public func claim(alertID: Int64, receiver: String, partner: String, now: Double) -> AckLinkClaim {
        var g = SystemRandomNumberGenerator()
        let nonce = (0..<2).map { _ in String(format: "%016llx", g.next() as UInt64) }.joined()
        return AckLinkClaim(
            alertID: alertID, receiver: receiver, partner: partner, expires: (now + lifetime).rounded(.down),
            nonce: nonce)
    }

    public func token(_ c: AckLinkClaim) -> String {
        let text = ["v1", String(c.alertID), c.receiver, c.partner, String(Int64(c.expires)), c.nonce]
            .joined(separator: "\n")
        let mac = HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key)
        return Self.base64url(Array(text.utf8)) + "." + Self.base64url(Array(mac))
    }

    public func url(_ c: AckLinkClaim) -> String { baseURL + "/v1/ack/" + token(c) }

    /// The claim of a token made with this key and not expired at `now`; whether it was used is the store's to say.
    public func verify(_ token: String, now: Double) -> Result<AckLinkClaim, AckLinkError> {
        guard token.utf8.count <= Self.maxTokenLength else { return .failure(.invalid) }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let text = Self.unbase64url(parts[0]), let mac = Self.unbase64url(parts[1]),
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: text, using: key)
        else { return .failure(.invalid) }
        // Signed by us: well formed unless the key leaked; still read strictly.
        let fields = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard fields.count == 6, fields[0] == "v1", let id = Int64(fields[1]), !fields[2].isEmpty,
            !fields[3].isEmpty, let expires = Int64(fields[4]), fields[5].count == 32
        else { return .failure(.invalid) }
        let c = AckLinkClaim(
            alertID: id, receiver: String(fields[2]), partner: String(fields[3]), expires: Double(expires),
            nonce: String(fields[5]))
        return now < c.expires ? .success(c) : .failure(.expired)
    }

    /// Base64url without padding (RFC 4648 §5): the links' encoding, and the API tokens'.
    public static func base64url(_ bytes: [UInt8]) -> String {
        var s = Data(bytes).base64EncodedString()
        s = s.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        while s.hasSuffix("=") { s.removeLast() }
        return s
    }

    /// Strict base64url without padding: nil for any other byte or a length no encoder makes.
    static func unbase64url(_ s: Substring) -> [UInt8]? {
        guard s.utf8.count % 4 != 1 else { return nil }
        var t = ""
        t.reserveCapacity(s.utf8.count + 3)
        for c in s.unicodeScalars {
            switch c {
            case "A"..."Z", "a"..."z", "0"..."9": t.unicodeScalars.append(c)
            case "-": t += "+"
            case "_": t += "/"
            default: return nil
            }
        }
        while t.utf8.count % 4 != 0 { t += "=" }
        guard let d = Data(base64Encoded: t) else { return nil }
        // Only the canonical encoding: re-encoding gives back the text (no stray bits in the last character).
        guard base64url(Array(d)) == String(s) else { return nil }
        return Array(d)
    }
}
