import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import TriplineAlerts
import TriplineJSON
import TriplineOperations
import TriplineState

/// Authentication (SPEC §10): a bearer token of a principal of the configuration; anything else — missing,
/// malformed, unknown, expired, revoked, a principal removed — gets one byte-identical 401, and is audited with its
/// cause. A principal is who its credential says, never what the request claims. Each principal has a request
/// budget (429 with Retry-After beyond it). The reason comes from `Tripline-Reason`.
struct Authenticate: RouterMiddleware {
    typealias Context = APIContext
    let services: APIServices
    let limiter: RateLimiter

    init(services: APIServices) {
        self.services = services
        limiter = RateLimiter(perSecond: services.rate.perSecond, burst: services.rate.burst)
    }

    static let reasonHeader = HTTPField.Name("Tripline-Reason")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let ops = try await services.operations()
        let now = ops.clock()
        switch Tokens.authenticate(
            request.headers[.authorization], store: ops.store, principals: ops.config.alerts.principals, now: now)
        {
        case .failure(let why):
            try? ops.record(
                EventDraft(
                    at: now, kind: "auth_failed", reason: why.rawValue,
                    detail: JSONObject([
                        ("method", .string(request.method.rawValue)), ("path", .string(request.uri.path)),
                    ])))
            var headers = HTTPFields()
            headers[.contentType] = "application/problem+json"
            headers[.wwwAuthenticate] = "Bearer"
            return Response(
                status: .unauthorized, headers: headers,
                body: .init(byteBuffer: ByteBuffer(bytes: API.unauthorizedBody)))
        case .success(let (principal, token)):
            if let wait = limiter.take(principal.id, now: now) {
                var headers = HTTPFields()
                headers[.retryAfter] = String(Int(wait.rounded(.up)))
                headers[.contentType] = "application/problem+json"
                return Response(
                    status: .tooManyRequests, headers: headers,
                    body: .init(
                        byteBuffer: ByteBuffer(
                            string: #"{"type":"about:blank","title":"Too Many Requests","status":429}"#)))
            }
            var context = context
            context.caller = Caller(
                principal: principal, reason: request.headers[Self.reasonHeader] ?? "",
                via: [("token", .string(token.id))])
            return try await next(request, context)
        }
    }
}

/// A token bucket per principal.
final class RateLimiter: Sendable {
    let perSecond: Double
    let burst: Double
    private let buckets = NIOLockedValueBox([String: (tokens: Double, at: Double)]())

    init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = burst
    }

    /// Nil when the request may go; else the seconds to wait.
    func take(_ key: String, now: Double) -> Double? {
        buckets.withLockedValue { b in
            var (tokens, at) = b[key] ?? (burst, now)
            tokens = min(burst, tokens + (now - at) * perSecond)
            at = now
            if tokens < 1 {
                b[key] = (tokens, at)
                return (1 - tokens) / perSecond
            }
            b[key] = (tokens - 1, at)
            return nil
        }
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
