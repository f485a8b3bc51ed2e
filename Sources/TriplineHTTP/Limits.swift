import HTTPTypes
import Hummingbird
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension APIServer {
    /// How long a connection may stay silent before the server closes it (`http.idle_timeout`): no complete request
    /// head or body part read, nothing being answered. A connection that never completes its request head (a client
    /// trickling the headers a byte at a time) is closed when the timeout has passed since it opened, or since its
    /// last answer, so idle or half-open connections cannot pile up.
    public static let defaultIdleTimeout = 60.0

    /// Every connection holds a descriptor: `serve` raises its soft limit on open descriptors to the hard limit at
    /// start (the usual soft default, 1024, would otherwise cap it near a thousand clients); the hard limit stays the
    /// operator's (`ulimit -Hn`, systemd's `LimitNOFILE=`). Answers the soft limit in force afterwards.
    @discardableResult
    public static func raiseOpenFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(fileLimitResource, &limit) == 0 else { return 1024 }
        let target = min(limit.rlim_max, 1 << 20)  // an unlimited hard limit is no soft limit
        if limit.rlim_cur < target {
            var raised = limit
            raised.rlim_cur = target
            if setrlimit(fileLimitResource, &raised) == 0 { return Int(target) }
        }
        return Int(limit.rlim_cur)
    }

    /// The most connections the API holds at once: the soft descriptor limit less a reserve for the rest of `serve`
    /// (the state database, a followed file, deliveries' connections). Past it the server stops accepting, and new
    /// connections wait in the listen backlog until others close (the idle timeout closes the silent ones) — rather
    /// than the process running out of descriptors, which libdispatch answers by aborting it (its worker-pool monitor
    /// cannot open /proc/self/task/N/stat).
    public static func maxConnections() -> Int {
        var limit = rlimit()
        let soft = getrlimit(fileLimitResource, &limit) == 0 ? Int(min(limit.rlim_cur, 1 << 20)) : 1024
        return max(soft - 256, soft / 2)
    }

    #if canImport(Glibc)
        static let fileLimitResource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
        static let fileLimitResource = RLIMIT_NOFILE
    #endif
}

/// An error answer to a request that carries a body closes the connection after it (`Connection: close`): the body
/// may be unread — refused by its declared length, cut off at its limit, or never looked at by a caller who may not
/// send it — and the server does not read the rest of it just to throw it away (Hummingbird would, to reach the next
/// request on the connection: all of a 2 GB upload). The connection's own state handler closes it once the answer
/// is written (`ChannelShouldQuiesceEvent`, as for a graceful shutdown); a client still sending may see the
/// connection reset after the answer.
struct CloseAfterRefusal: RouterMiddleware {
    typealias Context = APIContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var response = try await next(request, context)
        guard response.status.code >= 400, Self.hasBody(request) else { return response }
        response.headers[.connection] = "close"
        context.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        return response
    }

    /// A declared length above zero, or a chunked (or otherwise encoded) body.
    static func hasBody(_ request: Request) -> Bool {
        request.headers[.transferEncoding] != nil || (request.headers[.contentLength].flatMap { Int($0) } ?? 0) > 0
    }
}
