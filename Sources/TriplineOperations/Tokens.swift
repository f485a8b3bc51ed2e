import Crypto
import Foundation
import TriplineAlerts
import TriplineAudit
import TriplineJSON
import TriplinePolicy
import TriplineState

/// API credentials (SPEC §10): `tl_` and 256 random bits (base64url), shown once; the state keeps only their
/// SHA-256, with the principal, an expiry and a revocation. A principal removed from the configuration loses its
/// tokens (they stop authenticating), and a malformed, unknown, expired or revoked token is refused alike.
public enum Tokens {
    public static let prefix = "tl_"
    /// `tl_` + 43 base64url characters.
    public static let length = 3 + 43

    /// A new token's text.
    public static func generate() -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        var g = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &g) }
        return prefix + base64url(bytes)
    }

    static func base64url(_ b: [UInt8]) -> String { AckLinks.base64url(b) }

    /// The hash the state keeps.
    public static func hash(_ token: String) -> String { hexString(Array(SHA256.hash(data: Data(token.utf8)))) }

    /// Why a presented token does not authenticate (for the audit record; the client always sees the same 401).
    public enum Failure: String, Error, Sendable {
        case missing, malformed, unknown, expired, revoked
        case principalRemoved = "principal removed"
    }

    /// The principal a presented `Authorization` header value stands for, or why not.
    public static func authenticate(
        _ header: String?, store: any StateStore, principals: [Principal], now: Double
    ) -> Result<(Principal, TokenRecord), Failure> {
        guard let header, !header.isEmpty else { return .failure(.missing) }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return .failure(.malformed) }
        let token = String(parts[1])
        guard token.hasPrefix(prefix), token.utf8.count == length,
            token.utf8.dropFirst(3).allSatisfy({ $0.isBase64URL })
        else { return .failure(.malformed) }
        guard let record = (try? store.token(hash: hash(token))) ?? nil else { return .failure(.unknown) }
        if record.revokedAt != nil { return .failure(.revoked) }
        if let e = record.expiresAt, now >= e { return .failure(.expired) }
        guard let p = principals.first(where: { $0.id == record.principal }) else {
            return .failure(.principalRemoved)
        }
        return .success((p, record))
    }
}

extension UInt8 {
    var isBase64URL: Bool {
        (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self) || (0x30...0x39).contains(self) || self == 0x2D
            || self == 0x5F
    }
}

extension Operations {
    public func tokenView(_ t: TokenRecord) -> JSONObject {
        var o = JSONObject([("id", .string(t.id)), ("principal", .string(t.principal))])
        o.append("created_at", .string(Renderer.time(t.createdAt)))
        o.append("created_by", .string(t.createdBy))
        o.append("expires_at", t.expiresAt.map { .string(Renderer.time($0)) } ?? .null)
        if let r = t.revokedAt { o.append("revoked_at", .string(Renderer.time(r))) }
        o.append("valid", .bool(t.valid(at: clock()) && config.alerts.principal(t.principal) != nil))
        return o
    }

    /// Issues a token for a principal of the configuration (admin); returns the token, shown this once.
    public func issueToken(_ c: Caller, principal: String, expiresIn: Double?) throws(OperationError) -> (
        token: String, view: JSONObject
    ) {
        try reasoned(c)
        let object: [(String, JSONValue)] = [("for", .string(principal))]
        try require(policy.decide(c.principal, .manageTokens), c, .manageTokens, object: object)
        guard config.alerts.principal(principal) != nil else {
            throw .invalid("\(principal) is not a principal of the configuration")
        }
        if let e = expiresIn, !(e > 0 && e <= 3650 * 86_400) { throw .invalid("a token expires within 3650d") }
        let token = Tokens.generate()
        let now = clock()
        let record = TokenRecord(
            id: "tok_" + String(Tokens.hash(token).prefix(12)), principal: principal, hash: Tokens.hash(token),
            createdAt: now, expiresAt: expiresIn.map { now + $0 }, createdBy: c.principal.id)
        var commit = Commit()
        commit.tokens = [record]
        commit.events = [event("token_issued", c, object + [("token", .string(record.id))])]
        do { try store.commit(commit) } catch { throw .failed(error.description) }
        return (token, tokenView(record))
    }

    public func listTokens(_ c: Caller) throws(OperationError) -> [JSONObject] {
        try reasoned(c)
        try require(policy.decide(c.principal, .manageTokens), c, .manageTokens)
        let all: [TokenRecord]
        do { all = try store.tokens() } catch { throw .failed(error.description) }
        try record(event("consultation", c, [("command", .string("tokens list"))]))
        return all.map(tokenView)
    }

    public func revokeToken(_ c: Caller, id: String) throws(OperationError) {
        try reasoned(c)
        let object: [(String, JSONValue)] = [("token", .string(id))]
        try require(policy.decide(c.principal, .manageTokens), c, .manageTokens, object: object)
        let all: [TokenRecord]
        do { all = try store.tokens() } catch { throw .failed(error.description) }
        guard var t = all.first(where: { $0.id == id }) else { throw .hidden("no token \(id)") }
        if t.revokedAt != nil { throw .conflict("token \(id) is already revoked") }
        t.revokedAt = clock()
        var commit = Commit()
        commit.tokens = [t]
        commit.events = [event("token_revoked", c, object + [("for", .string(t.principal))])]
        do { try store.commit(commit) } catch { throw .failed(error.description) }
    }
}
