import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import TriplineAlerts
import TriplineJSON
import TriplineOperations
import TriplineState
import X509

/// Authentication (SPEC §10): a bearer token of a principal of the configuration, or — over TLS with a client CA,
/// for a request without an `Authorization` header — the verified client certificate, mapped to a principal by its
/// subject (`ClientCertificates`). A request with the header is judged by its token alone, whatever certificate the
/// connection has. Anything else — missing, malformed, unknown, expired, revoked, a principal removed, a certificate
/// that stands for no principal — gets one byte-identical 401, and is audited with its cause. A principal is who its
/// credential says, never what the request claims. Each principal has a request budget (429 with Retry-After beyond
/// it). The reason comes from `Tripline-Reason`.
struct Authenticate: RouterMiddleware {
    typealias Context = APIContext
    let services: APIServices
    let limiter: RateLimiter
    /// Failed authentications per peer address: each within the budget is audited; beyond it they are answered 429
    /// and counted into the next audited one (`throttled`), so a stranger cannot fill the audit log.
    let failures: RateLimiter

    init(services: APIServices, failures: RateLimiter) {
        self.services = services
        limiter = RateLimiter(perSecond: services.rate.perSecond, burst: services.rate.burst)
        self.failures = failures
    }

    /// The longest request path an `auth_failed` record keeps (the rest is cut, its length noted).
    static let auditedPathLength = 256

    static let reasonHeader = HTTPField.Name("Tripline-Reason")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let ops = try await services.operations()
        let now = ops.clock()
        let principals = ops.config.alerts.principals
        let outcome: Result<(Principal, [(String, JSONValue)]), Failure>
        let header = request.headers[.authorization]
        if header == nil, services.clientCertificates,
            let certificate = await PeerCertificate.of(context.channel)
        {
            switch certificate {
            case .subject(let subject):
                let text = JSONValue.string(subject.description)
                outcome =
                    ClientCertificates.principal(for: subject, among: principals).map {
                        .success(($0, [("certificate", text)]))
                    } ?? .failure(Failure(cause: "certificate unknown", detail: [("certificate", text)]))
            case .unreadable:
                outcome = .failure(Failure(cause: "certificate unreadable", detail: []))
            }
        } else {
            outcome = Tokens.authenticate(header, store: ops.store, principals: principals, now: now)
                .map { ($0.0, [("token", .string($0.1.id))]) }.mapError { Failure(cause: $0.rawValue, detail: []) }
        }
        switch outcome {
        case .failure(let why):
            let peer = Self.peer(context.channel)
            if let wait = failures.take(peer, now: now) { return Self.tooManyRequests(wait) }
            try? ops.record(
                EventDraft(
                    at: now, kind: "auth_failed", reason: why.cause,
                    detail: JSONObject(
                        [("method", .string(request.method.rawValue))] + Self.path(request.uri.path)
                            + [("peer", .string(peer))] + why.detail
                            + Self.throttled(failures.refusedSince(peer)))))
            var headers = HTTPFields()
            headers[.contentType] = "application/problem+json"
            headers[.wwwAuthenticate] = "Bearer"
            return Response(
                status: .unauthorized, headers: headers,
                body: .init(byteBuffer: ByteBuffer(bytes: API.unauthorizedBody)))
        case .success(let (principal, via)):
            if let wait = limiter.take(principal.id, now: now) { return Self.tooManyRequests(wait) }
            var context = context
            context.caller = Caller(principal: principal, reason: request.headers[Self.reasonHeader] ?? "", via: via)
            context.operations = ops
            return try await next(request, context)
        }
    }

    /// 429 with the seconds to wait.
    static func tooManyRequests(_ wait: Double) -> Response {
        var headers = HTTPFields()
        headers[.retryAfter] = String(Int(wait.rounded(.up)))
        headers[.contentType] = "application/problem+json"
        return Response(
            status: .tooManyRequests, headers: headers,
            body: .init(
                byteBuffer: ByteBuffer(string: #"{"type":"about:blank","title":"Too Many Requests","status":429}"#)))
    }

    /// Whom failed authentications are counted against: the peer's IPv4 address, or its IPv6 /64 (one host is
    /// given a whole /64).
    static func peer(_ channel: any Channel) -> String {
        switch channel.remoteAddress {
        case .v4(let a)?: return a.host
        case .v6(let a)?:
            var address = a.address.sin6_addr
            let bytes = withUnsafeBytes(of: &address) { Array($0.prefix(8)) }
            return stride(from: 0, to: 8, by: 2).map {
                String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
            }.joined(separator: ":") + "::/64"
        default: return "local"
        }
    }

    /// The request path as an audit record keeps it: at most `auditedPathLength` characters, and the length of a
    /// longer one.
    static func path(_ path: String) -> [(String, JSONValue)] {
        guard path.count > auditedPathLength else { return [("path", .string(path))] }
        return [
            ("path", .string(String(path.prefix(auditedPathLength)))), ("path_length", .number(String(path.count))),
        ]
    }

    /// The refusals answered 429 since the peer's last audited one, when there were any.
    static func throttled(_ n: Int) -> [(String, JSONValue)] { n > 0 ? [("throttled", .number(String(n)))] : [] }

    /// Why a request did not authenticate: the audited cause, and what the audit record adds (never a token).
    struct Failure: Error {
        var cause: String
        var detail: [(String, JSONValue)]
    }
}

/// The client certificate the TLS handshake verified on a request's connection (NIOSSL verified it against the
/// configured client CA; the handshake fails otherwise), read from the connection's `NIOSSLHandler` when a request
/// needs it, with its subject in RFC 4514 order.
enum PeerCertificate {
    case subject(SubjectName)
    /// A certificate was verified but its subject could not be read (swift-certificates refused its encoding).
    case unreadable

    /// Nil without TLS or without a client certificate.
    static func of(_ channel: (any Channel)?) async -> PeerCertificate? {
        guard let channel, let certificate = try? await channel.nioSSL_peerCertificate().get() else { return nil }
        guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: der) else {
            return .unreadable
        }
        // X.509 keeps the RDNs most significant first; RFC 4514 writes them the other way round. A value that is
        // not a string (no configured subject can name one) keeps swift-certificates' description.
        return .subject(
            SubjectName(
                rdns: parsed.subject.reversed().map { rdn in
                    rdn.map { SubjectName.Attribute(type: "\($0.type)", value: String($0.value) ?? "\($0.value)") }
                }))
    }
}

/// A token bucket per key (a principal, a peer address), counting the requests it refused since it last let one go.
final class RateLimiter: Sendable {
    let perSecond: Double
    let burst: Double
    private let buckets = NIOLockedValueBox([String: Bucket]())
    /// Past this many keys, the buckets that are full again and owe no count are forgotten.
    static let maxKeys = 10_000

    struct Bucket {
        var tokens: Double
        var at: Double
        var refused = 0
    }

    init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = burst
    }

    /// Nil when the request may go; else the seconds to wait.
    func take(_ key: String, now: Double) -> Double? {
        buckets.withLockedValue { b in
            if b.count > Self.maxKeys { forgetIdle(&b, now: now) }
            var bucket = b[key] ?? Bucket(tokens: burst, at: now)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * perSecond)
            bucket.at = now
            defer { b[key] = bucket }
            if bucket.tokens < 1 {
                bucket.refused += 1
                return (1 - bucket.tokens) / perSecond
            }
            bucket.tokens -= 1
            return nil
        }
    }

    /// The requests of `key` refused since the last call (the count starts again at 0).
    func refusedSince(_ key: String) -> Int {
        buckets.withLockedValue { b in
            defer { b[key]?.refused = 0 }
            return b[key]?.refused ?? 0
        }
    }

    private func forgetIdle(_ b: inout [String: Bucket], now: Double) {
        b = b.filter { _, v in v.refused > 0 || v.tokens + (now - v.at) * perSecond < burst }
    }
}

/// Errors become RFC 9457 problem+json: a refusal 403, a protected or missing object 404, bad input 400 (a
/// conflict 409), a body over its limit 413 naming the limit, the state failing 500 (without its text).
struct ProblemMiddleware: RouterMiddleware {
    typealias Context = APIContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do { return try await next(request, context) } catch let e as OperationError {
            switch e {
            case .refused(let m): return API.problem(.forbidden, m)
            case .hidden(let m): return API.problem(.notFound, m)
            case .invalid(let m): return API.problem(.badRequest, m)
            case .conflict(let m): return API.problem(.conflict, m)
            case .failed: return API.problem(.internalServerError, "the state database failed; try again")
            }
        } catch let e as APIError {
            switch e {
            case .unauthorized:
                var headers = HTTPFields()
                headers[.contentType] = "application/problem+json"
                return Response(
                    status: .unauthorized, headers: headers,
                    body: .init(byteBuffer: ByteBuffer(bytes: API.unauthorizedBody)))
            case .invalid(let m): return API.problem(.badRequest, m)
            case .tooSlow(let seconds):
                return API.problem(
                    .requestTimeout,
                    "the body arrived slower than \(Int(APIServices.minBodyRate)) bytes per second on average past "
                        + "\(Int(seconds)) s")
            case .tooLarge(let limit):
                return API.problem(
                    .contentTooLarge, "the body is larger than \(limit) bytes",
                    extra: [("limit", .number(String(limit)))])
            }
        } catch let e as HTTPError {
            return API.problem(e.status, e.body)
        }
    }
}

/// Every look recorded before it is seen: the request runs collecting the audit records it makes (refusals
/// included), and its answer — or its error — goes out only once they are durable; when they could not be written
/// the answer is a 500 instead (`AuditBatcher`).
struct DurableAudit: RouterMiddleware {
    typealias Context = APIContext
    let batcher: AuditBatcher?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let batcher else { return try await next(request, context) }
        return try await batcher.collecting { try await next(request, context) }
    }
}
