import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// One SMTP reply: its code and its text lines (RFC 5321 §4.2; multi-line replies joined).
public struct SMTPReply: Sendable, CustomStringConvertible {
    public var code: Int
    public var lines: [String]
    public var description: String { "\(code) " + lines.joined(separator: " / ") }
}

/// Splits the server's bytes into replies: `ddd-text` lines continue, `ddd text` (or `ddd`) ends one.
struct SMTPReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = SMTPReply
    var lines: [String] = []

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let nl = buffer.readableBytesView.firstIndex(of: 0x0A) else {
            if buffer.readableBytes > 8192 { throw SMTPProtocolError("reply line longer than 8192 bytes") }
            return .needMoreData
        }
        let length = nl - buffer.readerIndex + 1
        var bytes = buffer.readBytes(length: length)!
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        guard bytes.count >= 3, bytes[0..<3].allSatisfy({ (0x30...0x39).contains($0) }),
            bytes.count == 3 || bytes[3] == 0x20 || bytes[3] == 0x2D
        else {
            throw SMTPProtocolError("malformed reply line \"\(String(decoding: bytes.prefix(80), as: UTF8.self))\"")
        }
        let code = Int(String(decoding: bytes[0..<3], as: UTF8.self))!
        lines.append(bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : "")
        if bytes.count == 3 || bytes[3] == 0x20 {
            context.fireChannelRead(wrapInboundOut(SMTPReply(code: code, lines: lines)))
            lines = []
        }
        return .continue
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

struct SMTPProtocolError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The reply deadline: armed when the connection opens (the greeting) and at every write, disarmed by each
/// complete reply. It measures the server alone — a busy client that reads its replies late does not time out.
/// When it fires, the channel closes with an error, and `fired` tells the session why.
final class SMTPReplyTimer: ChannelDuplexHandler {
    typealias InboundIn = SMTPReply
    typealias InboundOut = SMTPReply
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let timeout: TimeAmount
    let fired: NIOLockedValueBox<Bool>
    var task: Scheduled<Void>?

    init(timeout: TimeAmount, fired: NIOLockedValueBox<Bool>) {
        self.timeout = timeout
        self.fired = fired
    }

    func arm(_ context: ChannelHandlerContext) {
        task?.cancel()
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let fired = self.fired
        task = context.eventLoop.scheduleTask(in: timeout) {
            fired.withLockedValue { $0 = true }
            bound.value.fireErrorCaught(SMTPProtocolError("timed out waiting for the server"))
            bound.value.close(promise: nil)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        task?.cancel()
        task = nil
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        arm(context)
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        task?.cancel()
        task = nil
        context.fireChannelInactive()
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
    /// Connecting, and waiting for each reply.
    public var timeout: TimeAmount = .seconds(30)

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}

/// An SMTP client of our own on SwiftNIO (RFC 5321): EHLO (HELO as fallback), STARTTLS (RFC 3207) or implicit
/// TLS, AUTH PLAIN (RFC 4616) and LOGIN, MAIL/RCPT/DATA with dot-stuffing, QUIT; timeouts on connect and every
/// reply. Failures are `DeliveryFailure`s: 4xx replies, timeouts and network errors are retried, 5xx are
/// permanent.
public enum SMTPClient {
    public static func send(
        from: String, to recipients: [String], message: [UInt8], settings: SMTPSettings,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(DeliveryFailure) {
        let where_ = "smtp://\(settings.host):\(settings.port)"
        do {
            let sslContext = settings.security == .none ? nil : try NIOSSLContext(configuration: settings.tls)
            let sni = settings.serverName ?? (isAddress(settings.host) ? nil : settings.host)
            let implicit = settings.security == .implicitTLS
            let timeout = settings.timeout
            let timedOut = NIOLockedValueBox(false)
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .connect(host: settings.host, port: settings.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let ops = channel.pipeline.syncOperations
                        if implicit, let sslContext {
                            try ops.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: sni))
                        }
                        try ops.addHandler(ByteToMessageHandler(SMTPReplyDecoder()))
                        try ops.addHandler(SMTPReplyTimer(timeout: timeout, fired: timedOut))
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
            } catch  where timedOut.withLockedValue({ $0 }) {
                throw DeliveryFailure("timed out waiting for the server (\(timeout.nanoseconds / 1_000_000) ms)")
            }
        } catch let f as DeliveryFailure {
            throw DeliveryFailure("\(where_): \(f.message)", permanent: f.permanent)
        } catch {
            throw DeliveryFailure("\(where_): \(error)")
        }
    }

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
            guard let r = try await inbound.next() else {
                throw DeliveryFailure("the server closed the connection")
            }
            return r
        }

        /// Sends `line` (nil: only reads) and expects a reply in `accepted`; `what` names the step in errors,
        /// so no secret is ever quoted.
        @discardableResult
        func command(_ line: String?, expect accepted: ClosedRange<Int>, _ what: String) async throws -> SMTPReply {
            if let line { try await outbound.write(ByteBuffer(string: line + "\r\n")) }
            let r = try await reply()
            guard accepted.contains(r.code) else {
                throw DeliveryFailure("\(what): \(r)", permanent: (500...599).contains(r.code))
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

        func run(from: String, to recipients: [String], message: [UInt8]) async throws {
            try await command(nil, expect: 220...220, "greeting")
            var extensions = try await ehlo()
            if settings.security == .startTLS && !tls {
                guard extensions.contains(where: { $0 == "STARTTLS" || $0.hasPrefix("STARTTLS ") }) else {
                    throw DeliveryFailure("the server does not offer STARTTLS and TLS is required (require_tls)")
                }
                try await command("STARTTLS", expect: 220...220, "STARTTLS")
                let ctx = sslContext!
                let sni = self.sni
                let channel = self.channel
                try await channel.eventLoop.submit {
                    let handler = try NIOSSLClientHandler(context: ctx, serverHostname: sni)
                    try channel.pipeline.syncOperations.addHandler(handler, position: .first)
                }.get()
                tls = true
                extensions = try await ehlo()
            }
            if let user = settings.username {
                guard tls || SMTPClient.isLoopback(settings.host) else {
                    throw DeliveryFailure(
                        "refusing to send credentials without TLS to a remote server", permanent: true)
                }
                let offered = Set(
                    extensions.filter { $0.hasPrefix("AUTH ") || $0.hasPrefix("AUTH=") }
                        .flatMap { $0.dropFirst(5).split(separator: " ").map(String.init) })
                let password = settings.password ?? ""
                let mech =
                    settings.mechanism?.uppercased()
                    ?? (offered.contains("PLAIN") ? "PLAIN" : offered.contains("LOGIN") ? "LOGIN" : nil)
                guard let mech, offered.contains(mech) else {
                    throw DeliveryFailure(
                        "the server offers AUTH \(offered.sorted().joined(separator: " ")); "
                            + "\(settings.mechanism.map { "\($0) is" } ?? "PLAIN or LOGIN is") needed",
                        permanent: true)
                }
                if mech == "PLAIN" {
                    let token = Data(([0] + Array(user.utf8) + [0] + Array(password.utf8))).base64EncodedString()
                    try await command("AUTH PLAIN " + token, expect: 235...235, "AUTH PLAIN")
                } else {
                    try await command("AUTH LOGIN", expect: 334...334, "AUTH LOGIN")
                    try await command(Data(user.utf8).base64EncodedString(), expect: 334...334, "AUTH LOGIN user")
                    try await command(
                        Data(password.utf8).base64EncodedString(), expect: 235...235, "AUTH LOGIN password")
                }
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

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
