import Hummingbird
import Logging

extension API {
    /// Every route the API serves, as `(method, path)` with `{name}` captures (OpenAPI's form), read from the router
    /// itself (Hummingbird's `Router.routes`): the one source the OpenAPI document is checked against, so a route
    /// added to `router` and not described fails the test, and the reverse.
    public static var routes: [(method: String, path: String)] {
        let inert = APIServices(
            operations: { throw APIError.unauthorized }, ingest: { _, _ in throw APIError.unauthorized },
            reload: { false }, ready: { false }, signer: nil, openAPI: [], metrics: { "" })
        return router(inert, logger: Logger(label: "tripline.routes")).routes.map {
            (method: $0.method.rawValue, path: $0.path.description)
        }
    }
}
