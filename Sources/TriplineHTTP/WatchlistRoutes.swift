import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TriplineJSON
import TriplineOperations

/// What the list routes need from the running service (SPEC §10): where the lists in force come from, and the
/// reload that makes a submission or a withdrawal take effect for the next selector (true once it has).
public struct ListServices: Sendable {
    public var catalog: @Sendable () async -> ListCatalog
    public var reload: @Sendable () async -> Bool
    public init(
        catalog: @escaping @Sendable () async -> ListCatalog = { ListCatalog() },
        reload: @escaping @Sendable () async -> Bool = { false }
    ) {
        self.catalog = catalog
        self.reload = reload
    }
}

/// One list's submissions and withdrawals take turns (SPEC §10: concurrent submissions serialise, the last writer
/// wins): each is validated, stored and loaded before the next of the same list starts; other lists go on.
actor ListTurns {
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]

    func enter(_ key: String) async {
        guard waiting[key] != nil else {
            waiting[key] = []
            return
        }
        await withCheckedContinuation { waiting[key, default: []].append($0) }
    }

    func leave(_ key: String) {
        guard var queue = waiting[key], !queue.isEmpty else {
            waiting[key] = nil
            return
        }
        let next = queue.removeFirst()
        waiting[key] = queue
        next.resume()
    }
}

extension API {
    /// SPEC §4, §10: a submitted list is at most 256 MiB (413 naming the limit beyond).
    public static let maxList = Operations.maxListBytes
    static let listTurns = ListTurns()

    /// `body` with the list's turn held.
    static func inTurn<T: Sendable>(_ key: String, _ body: () async throws -> T) async throws -> T {
        await listTurns.enter(key)
        do {
            let r = try await body()
            await listTurns.leave(key)
            return r
        } catch {
            await listTurns.leave(key)
            throw error
        }
    }

    static func listPath(_ context: APIContext) throws -> (owner: String, list: String) {
        (try context.parameters.require("owner"), try context.parameters.require("list"))
    }

    /// A stored change the running service could not load (the database failing under it): 500, saying so.
    static func notLoaded(_ what: String) -> Response {
        problem(
            .internalServerError,
            "\(what) was recorded, but the running service could not load the lists again; it takes effect at the "
                + "next reload")
    }

    static func addWatchlists(_ r: RouterGroup<APIContext>, _ services: APIServices) {
        r.get("/v1/watchlists") { _, context in
            let c = try caller(context)
            let rows = try await operations(context, services).listWatchlists(
                c, catalog: await services.lists.catalog())
            return json(JSONObject([("watchlists", .array(rows.map { .object($0) }))]))
        }
        r.put("/v1/watchlists/{owner}/{list}") { request, context in
            let c = try caller(context)
            let (owner, list) = try listPath(context)
            let ops = try await operations(context, services)
            // The policy before the body: a refused caller's upload is not read.
            try ops.requireList(c, .submitWatchlist, owner, list)
            let body = try await collect(request, limit: maxList, bodyTimeout: services.bodyTimeout)
            let yaml = [UInt8](buffer: body)
            return try await inTurn(owner + "/" + list) { () async throws -> Response in
                switch try ops.submitWatchlist(
                    c, owner: owner, list: list, yaml: yaml, catalog: await services.lists.catalog())
                {
                case .accepted(let o):
                    let version = o["version"]?.stringValue ?? ""
                    guard await services.lists.reload() else { return notLoaded("version \(version)") }
                    var response = json(o, status: .created)
                    response.headers[.location] = "/v1/watchlists/\(owner)/\(list)?version=\(version)"
                    response.headers[.eTag] = "\"\(version)\""
                    return response
                case .refused(let version, let errors, let warnings):
                    return problem(
                        .unprocessableContent,
                        "the list has \(errors.count) error\(errors.count == 1 ? "" : "s"); the previous version "
                            + "stays in force",
                        extra: [
                            ("version", .string(version)), ("errors", .array(errors.map { .string($0) })),
                            ("warnings", .array(warnings.map { .string($0) })),
                        ])
                }
            }
        }
        r.get("/v1/watchlists/{owner}/{list}") { request, context in
            let c = try caller(context)
            let (owner, list) = try listPath(context)
            let version = request.uri.queryParameters["version"].map(String.init)
            let found = try await operations(context, services).readWatchlist(
                c, owner: owner, list: list, version: version, catalog: await services.lists.catalog())
            var response = raw(found.yaml, type: "application/yaml")
            response.headers[.eTag] = "\"\(found.version)\""
            return response
        }
        r.get("/v1/watchlists/{owner}/{list}/versions") { _, context in
            let c = try caller(context)
            let (owner, list) = try listPath(context)
            let versions = try await operations(context, services).watchlistVersions(
                c, owner: owner, list: list, catalog: await services.lists.catalog())
            return json(
                JSONObject([
                    ("owner", .string(owner)), ("list", .string(list)),
                    ("versions", .array(versions.map { .object($0) })),
                ]))
        }
        r.delete("/v1/watchlists/{owner}/{list}") { _, context in
            let c = try caller(context)
            let (owner, list) = try listPath(context)
            let ops = try await operations(context, services)
            return try await inTurn(owner + "/" + list) { () async throws -> Response in
                let version = try ops.withdrawWatchlist(
                    c, owner: owner, list: list, catalog: await services.lists.catalog())
                guard await services.lists.reload() else { return notLoaded("the withdrawal of version \(version)") }
                return Response(status: .noContent)
            }
        }
    }
}
