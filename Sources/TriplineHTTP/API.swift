import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TriplineAlerts
import TriplineAudit
import TriplineJSON
import TriplineOperations
import TriplinePolicy
import TriplineSelectors
import TriplineState
import TriplineYAML

/// A request's context: who the credential says it is (set by `Authenticate`), and the reason it gives; the
/// connection, whose TLS handler holds the client certificate (read by `Authenticate` only when it needs it).
public struct APIContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var caller: Caller?
    /// The operations the caller was authenticated by (one configuration for the whole request: a reload between
    /// authentication and the route must not judge an old principal by the new rules, or the reverse).
    public var operations: Operations?
    /// The connection the request came on: its peer certificate (client certificates), and `CloseAfterRefusal`
    /// closes it after an error answer.
    public let channel: any Channel
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
    /// Bodies are collected by the routes themselves, each with its own limit.
    public var maxUploadSize: Int { API.maxIngest }
}

/// What the API needs from the running service.
public struct APIServices: Sendable {
    /// The operations as configured now (after the last reload).
    public var operations: @Sendable () async throws -> Operations
    /// Ingests NDJSON lines through the one record step; answers once they are committed.
    public var ingest: @Sendable (_ lines: [[UInt8]], _ caller: Caller) async throws -> IngestOutcome
    /// SIGHUP's work: reload configuration, lists and rules; false when the new set was refused.
    public var reload: @Sendable () async -> Bool
    /// Lists and rules loaded, database writable.
    public var ready: @Sendable () async -> Bool
    /// The audit signer, when the configuration names a key.
    public var signer: NoteSigner?
    /// The OpenAPI document served at /v1/openapi.json.
    public var openAPI: [UInt8]
    /// Prometheus text for /metrics.
    public var metrics: @Sendable () async -> String
    /// A request body slower than `minBodyRate` bytes per second on average, once `bodyTimeout` seconds have passed
    /// since its first byte was awaited, is cut off with 408 (and its connection closed): a body trickled a byte
    /// just inside the idle timeout would otherwise hold a connection for ever.
    public var bodyTimeout = 30.0
    public static let minBodyRate = 16.0 * 1024
    /// A new checkpoint is signed for `GET /v1/audit/checkpoint` at most once a second; in between the latest.
    public var checkpointPace = Pace(every: 1)
    /// The records of requests, written together; each answer waits for its own (nil: each committed at once).
    public var audit: AuditBatcher?
    /// Requests per second per principal, and the burst above it (429 beyond).
    public var rate: (perSecond: Double, burst: Double) = (100, 200)
    /// Failed authentications per second per peer address, and the burst above it: each is audited; beyond, 429
    /// and a count in the next one audited (a stranger cannot fill the audit log).
    public var failedAuthentications: (perSecond: Double, burst: Double) = (1, 30)
    /// Where the lists in force come from, and the reload after a submission (WatchlistRoutes.swift).
    public var lists = ListServices()
    /// TLS with a client CA: a verified client certificate authenticates a request without `Authorization`.
    public var clientCertificates = false

    public init(
        operations: @escaping @Sendable () async throws -> Operations,
        ingest: @escaping @Sendable ([[UInt8]], Caller) async throws -> IngestOutcome,
        reload: @escaping @Sendable () async -> Bool, ready: @escaping @Sendable () async -> Bool,
        signer: NoteSigner?, openAPI: [UInt8], metrics: @escaping @Sendable () async -> String
    ) {
        self.operations = operations
        self.ingest = ingest
        self.reload = reload
        self.ready = ready
        self.signer = signer
        self.openAPI = openAPI
        self.metrics = metrics
    }
}

/// What an ingest request came to (202's body).
public struct IngestOutcome: Sendable {
    public var accepted: Int
    public var rejected: [(line: Int, id: String?, error: String)]
    public init(accepted: Int, rejected: [(line: Int, id: String?, error: String)]) {
        self.accepted = accepted
        self.rejected = rejected
    }
}

/// The HTTP API (SPEC §10): one versioned JSON API under `/v1`, every request authenticated (bearer tokens, client
/// certificates over TLS), every route through the one policy (via the operations), errors as RFC 9457
/// problem+json.
public enum API {
    /// SPEC §10: NDJSON ingest bodies up to 16 MiB.
    public static let maxIngest = 16 << 20
    /// Other request bodies (silences, tokens).
    public static let maxSmallBody = 1 << 20

    public static func router(_ services: APIServices, logger: Logger) -> Router<APIContext> {
        let router = Router(context: APIContext.self)
        router.middlewares.add(CloseAfterRefusal())
        router.middlewares.add(ProblemMiddleware())
        router.middlewares.add(DurableAudit(batcher: services.audit))
        router.get("/healthz") { _, _ in json(JSONObject([("status", .string("ok"))])) }
        router.get("/readyz") { _, _ in
            await services.ready()
                ? json(JSONObject([("status", .string("ready"))]))
                : problem(.serviceUnavailable, "not ready: lists and rules not loaded, or the database not writable")
        }
        // One budget per peer address for failed credentials: bad tokens and bad acknowledge links alike.
        let failures = RateLimiter(
            perSecond: services.failedAuthentications.perSecond, burst: services.failedAuthentications.burst)
        addAckLinks(router, services, failures: failures)
        let authed = router.group().add(middleware: Authenticate(services: services, failures: failures))
        authed.get("/metrics") { _, context in
            _ = try caller(context)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: await services.metrics())))
        }
        authed.get("/v1/openapi.json") { _, context in
            _ = try caller(context)
            return raw(services.openAPI, type: "application/json")
        }
        authed.post("/-/reload") { _, context in
            let c = try caller(context)
            let ok = try await operations(context, services).reload(c, services.reload)
            return ok
                ? json(JSONObject([("status", .string("reloaded"))]))
                : problem(.unprocessableContent, "the new configuration was refused; the running one stays")
        }
        addIngest(authed, services)
        addAlerts(authed, services)
        addSilences(authed, services)
        addOutbox(authed, services)
        addAudit(authed, services)
        addAuditExport(authed, services)
        addTokens(authed, services)
        addWatchlists(authed, services)
        return router
    }

    // MARK: Routes

    /// Acknowledge links (SPEC §11): the token in the path is the credential (single action, signed, bound to one
    /// alert, receiver and partner), so these two are outside `Authenticate`. GET shows, POST acknowledges.
    /// A page that is audited and changes nothing — a refusal (a link forged, garbled, expired, used...) or a look at
    /// the confirmation page — spends the peer's budget of failed authentications; beyond it the page is not audited
    /// but counted into the next audited one, and a link that does not verify is answered 429. The acknowledgement
    /// itself does not spend it (each link acknowledges once).
    static func addAckLinks(_ router: Router<APIContext>, _ services: APIServices, failures: RateLimiter) {
        @Sendable func answer(_ page: AckLinkPage) -> Response {
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-store"
            // The token is in the URL: no page it links to learns it, and no script runs on the page.
            headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
            headers[HTTPField.Name("Content-Security-Policy")!] = "default-src 'none'; form-action 'self'"
            headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
            return Response(
                status: HTTPResponse.Status(code: page.status), headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: page.html)))
        }
        @Sendable func use(_ context: APIContext, post: Bool) async throws -> Response {
            let token = context.parameters.get("token") ?? ""
            let ops = try await services.operations()
            let peer = Authenticate.peer(context.channel)
            let budget: @Sendable () -> AckLinkBudget = {
                if let wait = failures.take(peer, now: ops.clock()) { return .exhausted(wait: wait) }
                return .audit([("peer", .string(peer))] + Authenticate.throttled(failures.refusedSince(peer)))
            }
            let page = try await blocking { ops.ackLink(token: token, post: post, budget: budget) }
            if let wait = page.retryAfter {
                var response = Authenticate.tooManyRequests(wait)
                response.headers[.cacheControl] = "no-store"
                return response
            }
            return answer(page)
        }
        router.get("/v1/ack/{token}") { _, context in try await use(context, post: false) }
        router.post("/v1/ack/{token}") { _, context in try await use(context, post: true) }
    }

    static func addIngest(_ r: RouterGroup<APIContext>, _ services: APIServices) {
        r.post("/v1/selectors") { request, context in
            let c = try caller(context)
            let ops = try await operations(context, services)
            try ops.require(ops.policy.decide(c.principal, .ingest), c, .ingest)
            let body = try await collect(request, limit: maxIngest, bodyTimeout: services.bodyTimeout)
            let outcome = try await services.ingest(body.withUnsafeReadableBytes { lines(of: $0) }, c)
            var o = JSONObject([
                ("accepted", .number(String(outcome.accepted))), ("rejected", .number(String(outcome.rejected.count))),
            ])
            o.append(
                "rejects",
                .array(
                    outcome.rejected.map { r in
                        var e = JSONObject([("line", .number(String(r.line)))])
                        if let id = r.id { e.append("id", .string(id)) }
                        e.append("error", .string(r.error))
                        return .object(e)
                    }))
            return json(o, status: .accepted)
        }
    }

    static func addAlerts(_ r: RouterGroup<APIContext>, _ services: APIServices) {
        r.get("/v1/alerts") { request, context in
            let c = try caller(context)
            let q = request.uri.queryParameters
            var f = Operations.AlertFilter()
            if let s = q["state"] {
                guard let state = AlertState(rawValue: String(s)) else {
                    throw APIError.invalid("state is firing, acknowledged or resolved")
                }
                f.state = state
            }
            f.priority = q["priority"].map(String.init)
            f.owner = q["owner"].map(String.init)
            f.since = try time(q["since"], "since")
            f.limit = try integer(q["limit"], 1...1000, "limit is 1 to 1000").map { Int($0) } ?? f.limit
            f.before = try integer(q["before"], 1...Int64.max, "before is an alert id")
            let ops = try await operations(context, services)
            // The views as JSON text, most of them rendered before (`Operations.listAlertsRendered`).
            let page = try ops.listAlertsRendered(c, f)
            // Straight into the answer's buffer: the views are most of a page (100 views: ~130 KB).
            var body = ByteBuffer()
            body.reserveCapacity(page.alerts.reduce(64) { $0 + $1.count + 1 })
            body.writeString(#"{"alerts":["#)
            for (i, a) in page.alerts.enumerated() {
                if i > 0 { body.writeInteger(UInt8(ascii: ",")) }
                body.writeBytes(a)
            }
            body.writeInteger(UInt8(ascii: "]"))
            if let next = page.next {
                var w = JSONWriter()
                w.write(.string(nextLink("/v1/alerts", request, cursor: ("before", next))))
                body.writeString(#","next":"#)
                body.writeBytes(w.bytes)
            }
            body.writeInteger(UInt8(ascii: "}"))
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
        }
        r.get("/v1/alerts/{id}") { _, context in
            let c = try caller(context)
            let id = try context.parameters.require("id", as: Int64.self)
            return json(try await operations(context, services).showAlert(c, id: id))
        }
        r.post("/v1/alerts/{id}/ack") { request, context in
            let c = try caller(context)
            let id = try context.parameters.require("id", as: Int64.self)
            let body = try await object(request, context)
            let ops = try await operations(context, services)
            var until: Double?
            if let u = body?["until"]?.stringValue, u != "resolved" {
                guard let d = parseDurationText(u), d > 0, d <= Policy.maxSilence else {
                    throw APIError.invalid("until is \"resolved\" or a duration up to 365d")
                }
                until = ops.clock() + d
            }
            let end = until
            return json(try await blocking { try ops.act(c, id: id, resolve: false, until: end) })
        }
        r.post("/v1/alerts/{id}/resolve") { _, context in
            let c = try caller(context)
            let id = try context.parameters.require("id", as: Int64.self)
            let ops = try await operations(context, services)
            return json(try await blocking { try ops.act(c, id: id, resolve: true) })
        }
    }

    static func addSilences(_ r: RouterGroup<APIContext>, _ services: APIServices) {
        r.get("/v1/silences") { request, context in
            let c = try caller(context)
            let expired = request.uri.queryParameters["expired"] == "true"
            let list = try await operations(context, services).listSilences(c, expired: expired)
            return json(JSONObject([("silences", .array(list.map { .object($0) }))]))
        }
        r.post("/v1/silences") { request, context in
            let c = try caller(context)
            guard let body = try await object(request, context) else { throw APIError.invalid("a JSON object body") }
            guard let ms = body["matchers"]?.arrayValue?.compactMap(\.stringValue), !ms.isEmpty else {
                throw APIError.invalid("matchers: a list of label matchers")
            }
            guard let comment = body["comment"]?.stringValue else { throw APIError.invalid("comment is required") }
            guard let d = parseDurationText(body["duration"]?.stringValue ?? "2h") else {
                throw APIError.invalid("duration like 30m or 2h")
            }
            return json(
                try await operations(context, services).addSilence(c, matchers: ms, duration: d, comment: comment),
                status: .created)
        }
        r.delete("/v1/silences/{id}") { _, context in
            let c = try caller(context)
            try await operations(context, services).expireSilence(c, id: try context.parameters.require("id"))
            return Response(status: .noContent)
        }
    }

    static func addOutbox(_ r: RouterGroup<APIContext>, _ services: APIServices) {
        r.get("/v1/outbox") { request, context in
            let c = try caller(context)
            let q = request.uri.queryParameters
            let limit = try integer(q["limit"], 1...10_000, "limit is 1 to 10000") ?? 1000
            let items = try await operations(context, services).listOutbox(
                c, dead: q["status"] == "dead", limit: Int(limit))
            return json(JSONObject([("items", .array(items.map { .object($0) }))]))
        }
        r.post("/v1/outbox/{id}/retry") { _, context in
            let c = try caller(context)
            try await operations(context, services).retryOutbox(
                c, id: try context.parameters.require("id", as: Int64.self))
            return Response(status: .accepted)
        }
        r.post("/v1/receivers/{name}/enable") { _, context in
            let c = try caller(context)
            try await operations(context, services).enableReceiver(c, name: try context.parameters.require("name"))
            return Response(status: .noContent)
        }
    }

    static func addAudit(_ r: RouterGroup<APIContext>, _ services: APIServices) {
        r.get("/v1/audit/records") { request, context in
            let c = try caller(context)
            let q = request.uri.queryParameters
            var f = AuditFilter()
            f.from = try time(q["from"], "from")
            f.to = try time(q["to"], "to")
            f.selector = q["selector"].map(String.init)
            f.partner = q["partner"].map(String.init)
            f.list = q["list"].map(String.init)
            f.rule = q["rule"].map(String.init)
            f.receiver = q["receiver"].map(String.init)
            f.limit = Int(try integer(q["limit"], 1...10_000, "limit is 1 to 10000") ?? 1000)
            f.after = try integer(q["after"], 0...Int64(Int.max), "after is a record index").map { Int($0) }
            let (lines, problem, next) = try await operations(context, services).auditRecords(c, f)
            var o = JSONObject([("records", .array(lines.map { .object($0) }))])
            if let problem { o.append("verification_failed", .string(problem)) }
            if let next {
                o.append("next", .string(nextLink("/v1/audit/records", request, cursor: ("after", Int64(next)))))
            }
            return json(o)
        }
        r.get("/v1/audit/checkpoint") { _, context in
            _ = try caller(context)
            let fresh = services.checkpointPace.take()
            let note = try await operations(context, services).checkpoint(signer: services.signer, fresh: fresh)
            return raw(Array(note.utf8), type: "text/plain; charset=utf-8")
        }
        r.get("/v1/audit/proof/inclusion") { request, context in
            let c = try caller(context)
            let q = request.uri.queryParameters
            guard let index = q["index"].flatMap({ Int($0) }) else { throw APIError.invalid("index is required") }
            let size = try q["size"].map { s -> Int in
                guard let n = Int(s) else { throw APIError.invalid("size is a number") }
                return n
            }
            let proof = try await operations(context, services).proof(
                c, inclusion: index, size: size, old: nil, new: nil)
            return json(JSONObject([("proof", .array(proof.map { .string(Data($0).base64EncodedString()) }))]))
        }
        r.get("/v1/audit/proof/consistency") { request, context in
            let c = try caller(context)
            let q = request.uri.queryParameters
            guard let old = q["old"].flatMap({ Int($0) }), let new = q["new"].flatMap({ Int($0) }) else {
                throw APIError.invalid("old and new are required")
            }
            let proof = try await operations(context, services).proof(c, inclusion: nil, size: nil, old: old, new: new)
            return json(JSONObject([("proof", .array(proof.map { .string(Data($0).base64EncodedString()) }))]))
        }
    }

    static func addTokens(_ r: RouterGroup<APIContext>, _ services: APIServices) {
        r.get("/v1/tokens") { _, context in
            let c = try caller(context)
            let list = try await operations(context, services).listTokens(c)
            return json(JSONObject([("tokens", .array(list.map { .object($0) }))]))
        }
        r.post("/v1/tokens") { request, context in
            let c = try caller(context)
            guard let body = try await object(request, context), let p = body["principal"]?.stringValue else {
                throw APIError.invalid("principal is required")
            }
            var expires: Double? = 90 * 86_400
            if let e = body["expires"]?.stringValue {
                guard let d = parseDurationText(e) else { throw APIError.invalid("expires like 90d") }
                expires = d
            }
            let (token, view) = try await operations(context, services).issueToken(c, principal: p, expiresIn: expires)
            var o = view
            o.append("token", .string(token))  // shown this once
            return json(o, status: .created)
        }
        r.delete("/v1/tokens/{id}") { _, context in
            let c = try caller(context)
            try await operations(context, services).revokeToken(c, id: try context.parameters.require("id"))
            return Response(status: .noContent)
        }
    }

    // MARK: Plumbing

    /// An NDJSON body's lines as standard input and followed files have them (`LineReader`): split at each newline,
    /// a trailing CR dropped (CRLF files), a last line without its newline kept.
    static func lines(of raw: UnsafeRawBufferPointer) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        var start = 0
        func add(_ end: Int) {
            lines.append(Array(raw[start..<(end > start && raw[end - 1] == 0x0D ? end - 1 : end)]))
        }
        guard let base = raw.baseAddress else { return [] }
        while start < raw.count, let nl = memchr(base + start, 0x0A, raw.count - start) {
            let i = base.distance(to: UnsafeRawPointer(nl))
            add(i)
            start = i + 1
        }
        if start < raw.count { add(raw.count) }
        return lines
    }

    /// Threads for operations that write the state database: they block on its lock and fsync, which the
    /// cooperative pool (one thread a core) must not; many at once let the store write them in one transaction.
    static let writers: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 16)
        pool.start()
        return pool
    }()

    /// Runs `body` (a blocking write) on `writers`.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await writers.runIfActive(body)
    }

    /// The operations of the request: those it was authenticated by.
    static func operations(_ context: APIContext, _ services: APIServices) async throws -> Operations {
        if let ops = context.operations { return ops }
        return try await services.operations()
    }

    static func caller(_ context: APIContext) throws -> Caller {
        guard let c = context.caller else { throw APIError.unauthorized }
        return c
    }

    /// A query parameter as an integer in `range` (nil when absent; 400 with `message` otherwise): the one reader
    /// of page sizes and cursors.
    static func integer(_ v: Substring?, _ range: ClosedRange<Int64>, _ message: String) throws -> Int64? {
        guard let v else { return nil }
        guard let n = Int64(v), range.contains(n) else { throw APIError.invalid(message) }
        return n
    }

    /// A query parameter as an RFC 3339 time (nil when absent; 400 naming it otherwise).
    static func time(_ v: Substring?, _ name: String) throws -> Double? {
        guard let v else { return nil }
        guard let t = Timestamp.parse(String(v)) else { throw APIError.invalid("\(name) is an RFC 3339 time") }
        return t
    }

    /// The link to the page after this one: the request's own query (its filters and limit) with the cursor
    /// parameter set, each value percent-encoded.
    static func nextLink(_ path: String, _ request: Request, cursor: (name: String, value: Int64)) -> String {
        var items = request.uri.queryParameters.filter { String($0.key) != cursor.name }.map {
            (String($0.key), String($0.value))
        }
        items.sort { $0.0 < $1.0 }
        items.append((cursor.name, String(cursor.value)))
        return path + "?" + items.map { k, v in queryEncoded(k) + "=" + queryEncoded(v) }.joined(separator: "&")
    }

    /// `s` for a query component: RFC 3986 unreserved bytes as they are, every other byte of its UTF-8 as %XX.
    static func queryEncoded(_ s: String) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(b)
            default:
                out += [UInt8(ascii: "%"), digits[Int(b >> 4)], digits[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The request body, up to `limit` bytes (413 naming the limit beyond it).
    /// A body must also keep up `APIServices.minBodyRate` once `bodyTimeout` has passed (408 otherwise).
    static func collect(_ request: Request, limit: Int, bodyTimeout: Double = 30) async throws -> ByteBuffer {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError.tooLarge(limit)
        }
        let start = DispatchTime.now().uptimeNanoseconds
        var body = ByteBuffer()
        for try await var chunk in request.body {
            guard body.readableBytes + chunk.readableBytes <= limit else { throw APIError.tooLarge(limit) }
            body.writeBuffer(&chunk)
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if elapsed > bodyTimeout && Double(body.readableBytes) < elapsed * APIServices.minBodyRate {
                throw APIError.tooSlow(bodyTimeout)
            }
        }
        return body
    }

    /// A small JSON object body, if any.
    static func object(_ request: Request, _ context: APIContext) async throws -> JSONObject? {
        let body = try await collect(request, limit: maxSmallBody)
        if body.readableBytes == 0 { return nil }
        let v: JSONValue
        do { v = try body.withUnsafeReadableBytes { try JSONParser.parse($0.bindMemory(to: UInt8.self)) } } catch {
            throw APIError.invalid("the body is not JSON: \(error)")
        }
        guard case .object(let o) = v else { throw APIError.invalid("the body is a JSON object") }
        return o
    }

    static func json(_ o: JSONObject, status: HTTPResponse.Status = .ok) -> Response {
        var w = JSONWriter()
        w.write(o)
        return raw(w.bytes, type: "application/json", status: status)
    }

    static func raw(_ bytes: [UInt8], type: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// RFC 9457 problem details.
    static func problem(_ status: HTTPResponse.Status, _ detail: String?, extra: [(String, JSONValue)] = []) -> Response
    {
        var o = JSONObject([
            ("type", .string("about:blank")), ("title", .string(status.reasonPhrase)),
            ("status", .number(String(status.code))),
        ])
        if let detail { o.append("detail", .string(detail)) }
        for (k, v) in extra { o.append(k, v) }
        return raw(Array(JSONWriter.string(.object(o)).utf8), type: "application/problem+json", status: status)
    }

    /// The one 401 body, byte for byte the same whatever the cause (the cause is in the audit log).
    static let unauthorizedBody = Array(
        #"{"type":"about:blank","title":"Unauthorized","status":401}"#.utf8)
}

/// Errors of the API layer itself (the operations have theirs).
enum APIError: Error {
    case unauthorized
    case invalid(String)
    case tooLarge(Int)
    /// A body slower than the minimum rate past the body timeout (seconds).
    case tooSlow(Double)
}

/// `parseDuration` for request fields (the one the configuration uses).
func parseDurationText(_ s: String) -> Double? {
    guard let d = parseDuration(s), d.isFinite else { return nil }
    return d
}

/// At most one `take()` that answers true per `every` seconds (for work any caller may trigger).
public final class Pace: Sendable {
    let every: Double
    private let last = NIOLockedValueBox(-Double.infinity)
    public init(every: Double) { self.every = every }
    public func take() -> Bool {
        let now = Date().timeIntervalSince1970
        return last.withLockedValue { l in
            guard now - l >= every else { return false }
            l = now
            return true
        }
    }
}
