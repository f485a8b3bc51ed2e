import Foundation
import Hummingbird
import Logging
import NIOCore
import TriplineOperations

/// The API as a service of `serve`'s group: Hummingbird on the configured address.
public enum APIServer {
    /// The application for `services` on `host:port` (port 0: any free port; `onRunning` hears the port bound); a
    /// connection silent for `idleTimeout` seconds is closed (`http.idle_timeout`, `defaultIdleTimeout`).
    public static func application(
        _ services: APIServices, host: String, port: Int, idleTimeout: Double = defaultIdleTimeout, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: API.router(services, logger: logger),
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(Int64(idleTimeout * 1e9)))),
            configuration: .init(
                address: .hostname(host, port: port), serverName: "tripline",
                availableConnectionsDelegate: .maximum(maxConnections(), logger: logger)),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// The OpenAPI document kept in the repository (Sources/TriplineHTTP/Resources/openapi.json).
    public static var openAPIDocument: [UInt8] {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
            let data = try? Data(contentsOf: url)
        else { return Array("{}".utf8) }
        return Array(data)
    }
}
