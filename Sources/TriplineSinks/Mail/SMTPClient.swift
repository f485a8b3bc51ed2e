import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import TriplineMailWire

/// Tells `SMTPReplyHandler` that the next command is STARTTLS (a user outbound event, sent before the command).
struct SMTPExpectStartTLS: Sendable {}

/// The client's side of the connection, between the bytes (or the TLS handler) and the session:
/// - splits the server's bytes into replies with `SMTPReplyDecoder` (bounded; beyond, a protocol error);
/// - the reply deadline: armed when the connection opens (the greeting) and at every write, disarmed by each
///   complete reply. It measures the server alone — a busy client that reads its replies late does not time out;
/// - the transaction deadline: the whole exchange, connect to QUIT, ends by `deadline`;
/// - STARTTLS (RFC 3207 §4.2): once the 220 to STARTTLS is read, anything else the server sent before the TLS
///   handler was in place is discarded, never read as a reply (what comes after passes through TLS).
/// When a deadline fires or a reply breaks the rules, the channel closes with an error, and `fired` tells the
/// session why (for deadlines).
final class SMTPReplyHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = SMTPReply
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum StartTLS { case no, awaitingReply, discarding }

    let replyTimeout: TimeAmount
    let deadline: NIODeadline
    let deadlineText: String
    let fired: NIOLockedValueBox<String?>
    var replyTask: Scheduled<Void>?
    var deadlineTask: Scheduled<Void>?
    var decoder = SMTPReplyDecoder()
    var startTLS = StartTLS.no
    var failed = false

    init(replyTimeout: TimeAmount, deadline: NIODeadline, deadlineText: String, fired: NIOLockedValueBox<String?>) {
        self.replyTimeout = replyTimeout
        self.deadline = deadline
        self.deadlineText = deadlineText
        self.fired = fired
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { stopTimers() }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimers()
        context.fireChannelInactive()
    }

    func start(_ context: ChannelHandlerContext) {
        guard deadlineTask == nil else { return }
        armReply(context)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let text = deadlineText
        deadlineTask = context.eventLoop.scheduleTask(deadline: deadline) {
            bound.value.0.fire(bound.value.1, text)
        }
    }

    func armReply(_ context: ChannelHandlerContext) {
        replyTask?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let text = "timed out waiting for the server (\(replyTimeout.nanoseconds / 1_000_000) ms)"
        replyTask = context.eventLoop.scheduleTask(in: replyTimeout) {
            bound.value.0.fire(bound.value.1, text)
        }
    }

    func stopTimers() {
        replyTask?.cancel()
        replyTask = nil
        deadlineTask?.cancel()
        deadlineTask = nil
    }

    /// A deadline passed: the session learns why from `fired`.
    func fire(_ context: ChannelHandlerContext, _ text: String) {
        fired.withLockedValue { if $0 == nil { $0 = text } }
        fail(context, SMTPProtocolError(text))
    }

    func fail(_ context: ChannelHandlerContext, _ error: any Error) {
        guard !failed else { return }
        failed = true
        stopTimers()
        decoder.reset()
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Before the handshake completes, what the server pipelined after its 220 is not a reply.
        guard !failed, startTLS != .discarding else { return }
        let incoming = unwrapInboundIn(data)
        decoder.append(incoming.readableBytesView)
        do {
            while let reply = try decoder.next() {
                replyTask?.cancel()
                replyTask = nil
                if startTLS == .awaitingReply {
                    startTLS = reply.code == 220 ? .discarding : .no
                    if startTLS == .discarding {
                        decoder.reset()
                        context.fireChannelRead(wrapInboundOut(reply))
                        return
                    }
                }
                context.fireChannelRead(wrapInboundOut(reply))
                if failed { return }
            }
        } catch {
            fail(context, error)
        }
    }

    /// The TLS handler is in place: what arrives from now on passes through it, so nothing more is discarded
    /// (whatever came in clear before is gone).
    func tlsStarted() {
        startTLS = .no
        decoder.reset()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        armReply(context)
        context.write(data, promise: promise)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if event is SMTPExpectStartTLS {
            startTLS = .awaitingReply
            promise?.succeed(())
        } else {
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }
}

/// Where and how to submit mail.
public struct SMTPSettings: Sendable {
    public enum Security: Sendable, Equatable {
        /// Plain text (no STARTTLS even when offered: as Alertmanager's `require_tls: false`).
        case none
        /// STARTTLS after EHLO, required (a server that does not offer it is an error).
        case startTLS
        /// TLS from the first byte (submissions on port 465, RFC 8314).
        case implicitTLS
    }
    public var host: String
    public var port: Int
    public var hello: String = "localhost"
    public var security: Security = .startTLS
    public var tls: TLSConfiguration = .makeClientConfiguration()
    /// The name checked in the server's certificate (and sent as SNI); the host unless it is an address.
    public var serverName: String?
    public var username: String?
    public var password: String?
    /// `PLAIN` or `LOGIN`; nil picks PLAIN when offered, else LOGIN.
    public var mechanism: String?
    /// Connecting, and waiting for each reply (at most 24 h).
    public var timeout: TimeAmount = .seconds(30)
    /// The whole transaction, connect to QUIT (RFC 5321 §4.5.3.2 gives only per-command limits; this bounds how long
    /// one receiver's mail can hold a delivery). nil: `transactionLimit`'s default.
    public var transactionTimeout: TimeAmount?

    /// The longest network wait (SPEC §6): 24 h.
    public static let maximumWait = TimeAmount.hours(24)

    /// The reply timeout in force: `timeout`, at most 24 h.
    public var replyLimit: TimeAmount { min(timeout, Self.maximumWait) }

    /// The transaction deadline in force: `transactionTimeout`, else the greater of 5 minutes and 10 × `timeout`;
    /// at most 24 h.
    public var transactionLimit: TimeAmount {
        let chosen =
            transactionTimeout
            ?? max(.minutes(5), .nanoseconds(replyLimit.nanoseconds.multipliedReportingOverflow(by: 10).partialValue))
        return min(max(chosen, .nanoseconds(1)), Self.maximumWait)
    }

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

/// An SMTP client of our own on SwiftNIO (RFC 5321): EHLO (HELO as fallback), STARTTLS (RFC 3207) or implicit
/// TLS, AUTH PLAIN (RFC 4616) and LOGIN, MAIL/RCPT/DATA with dot-stuffing, QUIT; timeouts on connect and every
/// reply, and a deadline on the whole transaction; replies bounded in size. Failures are `DeliveryFailure`s: 4xx
/// replies, timeouts and network errors are retried, 5xx are permanent. Credentials go in clear only to a literal
/// loopback address; errors of the AUTH steps quote the reply code, never the server's text (a server may echo
/// the credential), and nothing here logs protocol lines.
public enum SMTPClient {
    public static func send(
        from: String, to recipients: [String], message: [UInt8], settings: SMTPSettings,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(DeliveryFailure) {
        let where_ = "smtp://\(settings.host):\(settings.port)"
        let limit = settings.transactionLimit
        let deadline = NIODeadline.now() + limit
        if settings.username != nil && settings.security == .none && !isLoopback(settings.host) {
            throw DeliveryFailure("\(where_): \(Self.clearTextRefusal)", permanent: true)
        }
        do {
            let sslContext = settings.security == .none ? nil : try NIOSSLContext(configuration: settings.tls)
            let sni = settings.serverName ?? (isAddress(settings.host) ? nil : settings.host)
            let implicit = settings.security == .implicitTLS
            let timeout = settings.replyLimit
            let fired = NIOLockedValueBox<String?>(nil)
            let deadlineText = "the transaction took longer than \(limit.nanoseconds / 1_000_000) ms (its deadline)"
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(min(timeout, limit))
                .connect(host: settings.host, port: settings.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let ops = channel.pipeline.syncOperations
                        if implicit, let sslContext {
                            try ops.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: sni))
                        }
                        try ops.addHandler(
                            SMTPReplyHandler(
                                replyTimeout: timeout, deadline: deadline, deadlineText: deadlineText, fired: fired))
                        return try NIOAsyncChannel<SMTPReply, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            do {
                try await channel.executeThenClose { inbound, outbound in
                    let session = Session(
                        inbound: inbound.makeAsyncIterator(), outbound: outbound, channel: channel.channel,
                        settings: settings, sslContext: sslContext, sni: sni, tls: implicit)
                    try await session.run(from: from, to: recipients, message: message)
                }
            } catch {
                if let why = fired.withLockedValue({ $0 }) { throw DeliveryFailure(why) }
                throw error
            }
        } catch let f as DeliveryFailure {
            throw DeliveryFailure("\(where_): \(f.message)", permanent: f.permanent)
        } catch {
            throw DeliveryFailure("\(where_): \(error)")
        }
    }

    static let clearTextRefusal =
        "refusing to send credentials without TLS to a server that is not a loopback address (127.0.0.0/8, ::1)"

    static func isAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// `.` at the start of a line doubled (RFC 5321 §4.5.2), bare LF and CR made CRLF, and the final `CRLF.CRLF`.
    public static func dotStuffed(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + message.count / 64 + 5)
        var lineStart = true
        var i = 0
        while i < message.count {
            let b = message[i]
            if lineStart && b == 0x2E { out.append(0x2E) }
            lineStart = false
            if b == 0x0D || b == 0x0A {
                out.append(0x0D)
                out.append(0x0A)
                if b == 0x0D && i + 1 < message.count && message[i + 1] == 0x0A { i += 1 }
                lineStart = true
            } else {
                out.append(b)
            }
            i += 1
        }
        if !lineStart {
            out.append(0x0D)
            out.append(0x0A)
        }
        out += [0x2E, 0x0D, 0x0A]
        return out
    }

    /// The address inside `Name <addr>`, or the text itself.
    public static func addrSpec(_ s: String) -> String {
        if let lt = s.lastIndex(of: "<"), let gt = s.lastIndex(of: ">"), lt < gt {
            return String(s[s.index(after: lt)..<gt]).trimmingCharacters(in: .whitespaces)
        }
        return s.trimmingCharacters(in: .whitespaces)
    }

    final class Session {
        var inbound: NIOAsyncChannelInboundStream<SMTPReply>.AsyncIterator
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
        let channel: any Channel
        let settings: SMTPSettings
        let sslContext: NIOSSLContext?
        let sni: String?
        var tls: Bool
        /// What AUTH sent (the password, its base64 forms): cut out of any reply quoted later, should a server
        /// echo it back in another step's reply.
        var secrets: [String] = []

        init(
            inbound: NIOAsyncChannelInboundStream<SMTPReply>.AsyncIterator,
            outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, channel: any Channel, settings: SMTPSettings,
            sslContext: NIOSSLContext?, sni: String?, tls: Bool
        ) {
            self.inbound = inbound
            self.outbound = outbound
            self.channel = channel
            self.settings = settings
            self.sslContext = sslContext
            self.sni = sni
            self.tls = tls
        }

        func reply() async throws -> SMTPReply {
            let next: SMTPReply?
            do { next = try await inbound.next() } catch var e as SMTPProtocolError {
                e.quoted = e.quoted.map(scrubbed)
                throw e
            }
            guard let r = next else { throw DeliveryFailure("the server closed the connection") }
            return r
        }

        /// Sends `line` (nil: only reads) and expects a reply in `accepted`; `what` names the step in errors,
        /// so no secret is ever quoted. `quote: false` (the AUTH steps) leaves the reply's text out: only its code.
        @discardableResult
        func command(
            _ line: String?, expect accepted: ClosedRange<Int>, _ what: String, quote: Bool = true
        ) async throws -> SMTPReply {
            if let line { try await outbound.write(ByteBuffer(string: line + "\r\n")) }
            let r = try await reply()
            guard accepted.contains(r.code) else {
                throw DeliveryFailure(
                    "\(what): \(quote ? scrubbed(r.description) : String(r.code))",
                    permanent: (500...599).contains(r.code))
            }
            return r
        }

        func ehlo() async throws -> [String] {
            try await outbound.write(ByteBuffer(string: "EHLO \(settings.hello)\r\n"))
            let r = try await reply()
            if r.code == 250 { return r.lines.dropFirst().map { $0.uppercased() } }
            guard (500...599).contains(r.code) else {
                throw DeliveryFailure("EHLO: \(r)", permanent: false)
            }
            try await command("HELO \(settings.hello)", expect: 250...250, "HELO")
            return []
        }

        /// AUTH PLAIN or LOGIN. Errors name the step and the reply code only: a server's text after an AUTH line
        /// may echo it, and a protocol error's quoted text is left out for the same reason.
        func scrubbed(_ text: String) -> String {
            secrets.reduce(text) { $0.replacingOccurrences(of: $1, with: "…") }
        }

        func authenticate(_ mech: String, user: String, password: String) async throws {
            let plain = Data(([0] + Array(user.utf8) + [0] + Array(password.utf8))).base64EncodedString()
            secrets = [plain, Data(password.utf8).base64EncodedString(), password].filter { $0.count >= 4 }
            var step = "AUTH \(mech)"
            do {
                if mech == "PLAIN" {
                    try await command("AUTH PLAIN " + plain, expect: 235...235, step, quote: false)
                } else {
                    try await command("AUTH LOGIN", expect: 334...334, step, quote: false)
                    step = "AUTH LOGIN user"
                    try await command(Data(user.utf8).base64EncodedString(), expect: 334...334, step, quote: false)
                    step = "AUTH LOGIN password"
                    try await command(Data(password.utf8).base64EncodedString(), expect: 235...235, step, quote: false)
                }
            } catch let e as SMTPProtocolError {
                throw DeliveryFailure("\(step): \(e.message)")
            }
        }

        func run(from: String, to recipients: [String], message: [UInt8]) async throws {
            try await command(nil, expect: 220...220, "greeting")
            var extensions = try await ehlo()
            if settings.security == .startTLS && !tls {
                guard extensions.contains(where: { $0 == "STARTTLS" || $0.hasPrefix("STARTTLS ") }) else {
                    throw DeliveryFailure("the server does not offer STARTTLS and TLS is required (require_tls)")
                }
                // The handler drops whatever follows the 220 until the handshake completes (RFC 3207 §4.2).
                try await self.channel.triggerUserOutboundEvent(SMTPExpectStartTLS()).get()
                try await command("STARTTLS", expect: 220...220, "STARTTLS")
                let ctx = sslContext!
                let sni = self.sni
                let channel = self.channel
                try await channel.eventLoop.submit {
                    let handler = try NIOSSLClientHandler(context: ctx, serverHostname: sni)
                    try channel.pipeline.syncOperations.addHandler(handler, position: .first)
                    try channel.pipeline.syncOperations.handler(type: SMTPReplyHandler.self).tlsStarted()
                }.get()
                tls = true
                extensions = try await ehlo()
            }
            if let user = settings.username {
                guard tls || SMTPClient.isLoopback(settings.host) else {
                    throw DeliveryFailure(SMTPClient.clearTextRefusal, permanent: true)
                }
                let offered = Set(
                    extensions.filter { $0.hasPrefix("AUTH ") || $0.hasPrefix("AUTH=") }
                        .flatMap { $0.dropFirst(5).split(separator: " ").map(String.init) })
                let mech =
                    settings.mechanism?.uppercased()
                    ?? (offered.contains("PLAIN") ? "PLAIN" : offered.contains("LOGIN") ? "LOGIN" : nil)
                guard let mech, offered.contains(mech) else {
                    throw DeliveryFailure(
                        "the server offers AUTH \(offered.sorted().joined(separator: " ")); "
                            + "\(settings.mechanism.map { "\($0) is" } ?? "PLAIN or LOGIN is") needed",
                        permanent: true)
                }
                try await authenticate(mech, user: user, password: settings.password ?? "")
            }
            try await command("MAIL FROM:<\(SMTPClient.addrSpec(from))>", expect: 250...250, "MAIL FROM")
            for r in recipients {
                try await command("RCPT TO:<\(SMTPClient.addrSpec(r))>", expect: 250...251, "RCPT TO \(r)")
            }
            try await command("DATA", expect: 354...354, "DATA")
            try await outbound.write(ByteBuffer(bytes: SMTPClient.dotStuffed(message)))
            try await command(nil, expect: 250...250, "end of DATA")
            // Accepted: a failing QUIT changes nothing.
            try? await outbound.write(ByteBuffer(string: "QUIT\r\n"))
            _ = try? await reply()
        }
    }

    /// A literal loopback address: IPv4 127.0.0.0/8 or IPv6 ::1. Names (even "localhost", even "127.x.example")
    /// are not: a name can resolve anywhere.
    static func isLoopback(_ host: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) } == Array(repeating: 0, count: 15) + [1]
        }
        return false
    }
}
