import Dispatch
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded
import TriplineConfig
import TriplineFuzzing
import TriplineHTTP
import TriplineJSON
import TriplineOperations
import TriplineStores

/// The HTTP API's request handling (SPEC §10), in-process: the router, its middleware (authentication, audit,
/// problem+json) and every route over a real SQLite state database, without the network stack's parser.
/// The input: a byte choosing the method, a byte choosing the credential (none, a forged token, or one of six
/// principals'; its high bit leaves out the `Tripline-Reason` header otherwise added), then
/// `path\nName: value\n…\n\nbody`.
/// Properties: no request makes the server fail (500); every request without a valid credential to an
/// authenticated route gets the one byte-identical 401; nothing be-fedpol's principals receive mentions fr-dgsi's
/// list (its canary), whatever they ask.
public enum HTTPFuzzTarget {
    public static let target = FuzzTarget(name: "http", maxLength: 16384, timeout: 5) { bytes throws(FuzzFailure) in
        try World.shared.handle(bytes)
    }

    /// The status and body the in-process API answers an input with (for tests of the target itself).
    public static func answer(_ bytes: [UInt8]) -> (status: Int, body: String)? {
        World.shared.exchange(bytes).map { ($0.status, String(decoding: $0.body, as: UTF8.self)) }
    }

    static let methods: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch, .head, .options]
    static let principals = ["analyst-fr", "partner-fr", "analyst-be", "partner-be", "auditor-1", "admin-1"]
    static let canary = "CANARY-FR-7Q2X"

    final class World: @unchecked Sendable {
        static let shared = World()
        static let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "tripline-fuzz-http-\(getpid())"
        ).path
        let responder: RouterResponder<APIContext>
        let tokens: [String]
        var refusal: [UInt8]?

        init() {
            let dir = URL(fileURLWithPath: World.directory)
            try? FileManager.default.removeItem(at: dir)
            // Removed when the process ends (the fuzzer's or the test run's): no state database left in /tmp.
            atexit { try? FileManager.default.removeItem(atPath: World.directory) }
            try! FileManager.default.createDirectory(
                at: dir.appendingPathComponent("Watchlists"), withIntermediateDirectories: true)
            try! FileManager.default.createDirectory(
                at: dir.appendingPathComponent("Rules"), withIntermediateDirectories: true)
            let config = """
                rules: Rules
                watchlists: Watchlists
                state: state.sqlite
                operator: ops
                partners:
                  - {id: ops, name: Operator, countries: []}
                  - {id: be-fedpol, name: Belgian Federal Police, countries: [BE]}
                  - {id: fr-dgsi, name: French DGSI, countries: [FR]}
                principals:
                  - {id: analyst-fr, partner: fr-dgsi, role: analyst}
                  - {id: partner-fr, partner: fr-dgsi, role: partner}
                  - {id: analyst-be, partner: be-fedpol, role: analyst}
                  - {id: partner-be, partner: be-fedpol, role: partner}
                  - {id: auditor-1, partner: ops, role: auditor}
                  - {id: admin-1, partner: ops, role: admin}
                receivers:
                  - {name: ops-oncall, partner: ops, file_configs: [{path: alerts.ndjson}]}
                route: {receiver: ops-oncall}

                """
            let path = dir.appendingPathComponent("tripline.yaml").path
            try! config.write(toFile: path, atomically: true, encoding: .utf8)
            let c = try! Configuration.load(config: path)
            let store = try! StateStores.open(c.state)
            let ops = try! Operations(config: c, store: store)
            let admin = Caller(principal: c.alerts.principal("admin-1")!, reason: "fuzz set-up", via: [])
            tokens = principals.map { try! ops.issueToken(admin, principal: $0, expiresIn: 86_400).token }
            let fr = Caller(principal: c.alerts.principal("partner-fr")!, reason: "fuzz set-up", via: [])
            let list = """
                watchlist: contacts
                owner: fr-dgsi
                description: \(canary) description
                handling: {tlp: amber}
                review_by: 2031-01-01
                entries:
                  - ref: \(canary)-1
                    label: \(canary) label
                    selectors:
                      - {type: phone, value: "+33 6 12 34 56 78"}

                """
            _ = try! ops.submitWatchlist(
                fr, owner: "fr-dgsi", list: "contacts", yaml: Array(list.utf8), catalog: ListCatalog())
            var services = APIServices(
                operations: { ops },
                ingest: { lines, _ in IngestOutcome(accepted: lines.count, rejected: []) },
                reload: { true }, ready: { true }, signer: nil, openAPI: Array("{}".utf8), metrics: { "" })
            services.rate = (1e9, 1e9)
            services.failedAuthentications = (1e9, 1e9)
            services.lists = ListServices(reload: { true })
            var logger = Logger(label: "fuzz")
            logger.logLevel = .critical
            responder = API.router(services, logger: logger).buildResponder()
        }

        /// The request an input describes, the principal (nil: none or forged) and the answer.
        func exchange(_ bytes: [UInt8]) -> (
            method: HTTPRequest.Method, path: String, who: Int, status: Int, body: [UInt8]
        )? {
            guard bytes.count >= 2 else { return nil }
            let method = HTTPFuzzTarget.methods[Int(bytes[0]) % HTTPFuzzTarget.methods.count]
            let who = Int(bytes[1] & 0x7F) % (HTTPFuzzTarget.principals.count + 2)
            let rest = bytes.dropFirst(2)
            let split = rest.firstRange(of: [0x0A, 0x0A])
            let head = String(decoding: rest[..<(split?.lowerBound ?? rest.endIndex)], as: UTF8.self)
            let body = split.map { Array(rest[$0.upperBound...]) } ?? []
            var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var path = lines.isEmpty ? "/" : lines.removeFirst()
            if !path.hasPrefix("/") { path = "/v1/" + path }
            var fields = HTTPFields()
            for l in lines {
                guard let colon = l.firstIndex(of: ":"), let name = HTTPField.Name(String(l[..<colon])) else {
                    continue
                }
                fields.append(
                    HTTPField(
                        name: name, value: String(l[l.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
            }
            // A reason unless the credential byte's high bit asks for none (or the input gives its own).
            if bytes[1] & 0x80 == 0, let reason = HTTPField.Name("Tripline-Reason"), fields[reason] == nil {
                fields[reason] = "fuzz"
            }
            fields[.authorization] = nil
            switch who {
            case 0: break
            case 1: fields[.authorization] = "Bearer tl_" + String(repeating: "A", count: 43)
            default: fields[.authorization] = "Bearer " + tokens[who - 2]
            }
            if fields[.contentLength] == nil && !body.isEmpty { fields[.contentLength] = String(body.count) }
            let request = Request(
                head: HTTPRequest(
                    method: method, scheme: "http", authority: "localhost", path: path, headerFields: fields),
                body: RequestBody(buffer: ByteBuffer(bytes: body)))
            let (status, answer) = respond(request)
            return (method, path, who, status, answer)
        }

        func handle(_ bytes: [UInt8]) throws(FuzzFailure) {
            guard let (method, path, who, status, answer) = exchange(bytes) else { return }
            try FuzzTarget.check(
                status != 500, "http", "\(method) \(path) answered 500: \(String(decoding: answer, as: UTF8.self))")
            // The router's view of the path: without its query and a trailing '/'.
            var route = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
            while route.count > 1 && route.hasSuffix("/") { route.removeLast() }
            let authenticated = !(route == "/healthz" || route == "/readyz")
            if who < 2 && authenticated && status != 404 && status != 405 {
                if refusal == nil && status == 401 { refusal = answer }
                try FuzzTarget.check(
                    status == 401 && answer == refusal, "http",
                    "\(method) \(path) without a valid credential answered \(status): \(String(decoding: answer, as: UTF8.self))"
                )
            }
            if who >= 2 && HTTPFuzzTarget.principals[who - 2].hasSuffix("-be") {
                try FuzzTarget.check(
                    !String(decoding: answer, as: UTF8.self).contains(HTTPFuzzTarget.canary), "http",
                    "\(HTTPFuzzTarget.principals[who - 2]) saw fr-dgsi's list through \(method) \(path)")
            }
        }

        /// One request through the router, waited for (the fuzzer's thread is not one of the concurrency pool's).
        func respond(_ request: Request) -> (Int, [UInt8]) {
            let done = DispatchSemaphore(value: 0)
            let box = ResultBox()
            let responder = self.responder
            Task {
                // An embedded channel belongs to the thread that uses it: made here, in the task.
                let context = APIContext(
                    source: ApplicationRequestContextSource(channel: EmbeddedChannel(), logger: Logger(label: "fuzz")))
                do {
                    let response = try await responder.respond(to: request, context: context)
                    let collected = Collected()
                    try await response.body.write(Collector(into: collected))
                    box.set(Int(response.status.code), collected.bytes)
                } catch let e as any HTTPResponseError {
                    box.set(Int(e.status.code), [])
                } catch {
                    box.set(500, Array("\(error)".utf8))
                }
                done.signal()
            }
            done.wait()
            return box.get()
        }
    }

    final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: (Int, [UInt8]) = (0, [])
        func set(_ s: Int, _ b: [UInt8]) { lock.withLock { value = (s, b) } }
        func get() -> (Int, [UInt8]) { lock.withLock { value } }
    }

    final class Collected: @unchecked Sendable {
        var bytes: [UInt8] = []
    }

    struct Collector: ResponseBodyWriter {
        let into: Collected
        mutating func write(_ buffer: ByteBuffer) async throws { into.bytes += buffer.readableBytesView }
        mutating func write(contentsOf buffers: some Sequence<ByteBuffer>) async throws {
            for b in buffers { into.bytes += b.readableBytesView }
        }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}
