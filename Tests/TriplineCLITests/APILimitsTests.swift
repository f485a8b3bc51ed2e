import Foundation
import Testing
import TriplineJSON
import TriplineTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The HTTP API under hostile load (issue 15), against the real `tripline serve` on loopback: a 2 GB body, a 10 MB
/// line, 10,000 idle connections, clients that stay silent or trickle their headers. Each time the server's resident
/// memory (`VmRSS` of /proc/PID/status) grows by at most 256 MB and a normal request still answers within a second.
@Suite("HTTP API limits", .serialized)
struct APILimitsTests {
    static let mib = 1 << 20
    /// What an attack may add to the server's resident memory.
    static let growthBudget = 256 * mib
    /// The attacks' uploads: 2 GB, generated as they are sent.
    static let hugeBody = 2 << 30

    /// `AuthorizationTests`' deployment served with the API (`extra` settings of `http:`), tokens for partner-be (a
    /// partner: alerts, its own lists) and ingest-1 (ingest).
    static func serve(http extra: String = "") throws -> APITests.Server {
        let dir = try AuthorizationTests.deployment()
        do {
            let server = try APITests.Server(dir: dir, http: extra)
            try server.issue("partner-be")
            try server.issue("ingest-1")
            try server.start()
            return server
        } catch {
            try? FileManager.default.removeItem(at: dir)
            throw error
        }
    }

    static func pid(_ server: APITests.Server) throws -> Int32 {
        try #require(server.process?.processIdentifier)
    }

    /// A process's resident memory now and its peak (`VmRSS`, `VmHWM`), in bytes.
    static func memory(_ pid: Int32) -> (now: Int, peak: Int) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return -1 }
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1) * 1024
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    static func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / Double(mib)) }

    /// `body`'s result, and the seconds it took.
    static func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
        let start = ContinuousClock.now
        let reply = try body()
        let d = ContinuousClock.now - start
        return (reply, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }

    // MARK: Raw sockets

    /// A blocking TCP connection to the loopback port, closed on exec (no child of another test inherits it), with
    /// send and receive timeouts so that a test cannot hang.
    static func connection(_ port: Int, timeout: Int = 30) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var t = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &t, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &t, socklen_t(MemoryLayout<timeval>.size))
        var addr = loopback(port)
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard r == 0 else {
            close(fd)
            throw TestFailure("connect to \(port): errno \(errno)")
        }
        return fd
    }

    static func loopback(_ port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return addr
    }

    /// Writes all of `bytes` (never SIGPIPE); false when the connection refused them (reset, closed, timed out).
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            off += n
        }
        return true
    }

    /// What the server sent before its end (or a reset, or the receive timeout): everything up to the end of the
    /// first answer when it has a `Content-Length`.
    static func readAnswer(_ fd: Int32) -> [UInt8] {
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            answer += buffer[0..<n]
            if let end = answer.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: answer[..<end.lowerBound], as: UTF8.self).lowercased()
                if let l = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                    let length = Int(l.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)),
                    answer.count >= end.upperBound + length
                {
                    break
                }
            }
        }
        return answer
    }

    /// An upload's outcome: the answer's status, head and body (if one came), the bytes sent after the request head
    /// before the answer was there and in all (the server refusing more), and the seconds it all took.
    struct Upload: CustomStringConvertible {
        var status: Int?
        var head: String
        var body: String
        var answeredAfter: Int?
        var sent: Int
        var seconds: Double

        var description: String {
            (status.map { "\($0)" } ?? "no answer (a reset)")
                + (answeredAfter.map { ", seen after \($0) bytes sent" } ?? "")
                + "; \(sent) bytes sent before the server refused more, in \(String(format: "%.3f", seconds)) s"
        }
    }

    /// Sends `head` then `total` bytes of NDJSON-looking lines made up as they go (in HTTP chunks when `chunked`), in
    /// 1 MiB pieces, noting when the answer arrives and sending on until the server refuses more (a reset, its end)
    /// or all is sent; then reads the answer. The test never holds more than one piece.
    static func upload(_ port: Int, head: String, total: Int, chunked: Bool) throws -> Upload {
        let fd = try connection(port)
        defer { close(fd) }
        let start = ContinuousClock.now
        guard sendAll(fd, Array(head.utf8)) else { throw TestFailure("the request head was refused") }
        let line = Array(#"{"id":"flood","type":"phone","value":"+32470000002"}"#.utf8) + [0x0A]
        var piece: [UInt8] = []
        while piece.count < mib { piece += line }
        piece = Array(piece.prefix(mib))
        var sent = 0
        var answeredAfter: Int?
        while sent < total {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if answeredAfter == nil && poll(&p, 1, 0) > 0 { answeredAfter = sent }
            let n = min(piece.count, total - sent)
            let frame =
                chunked
                ? Array((String(n, radix: 16) + "\r\n").utf8) + piece[0..<n] + [0x0D, 0x0A] : Array(piece[0..<n])
            guard sendAll(fd, frame) else { break }
            sent += frame.count
        }
        if sent >= total && chunked { _ = sendAll(fd, Array("0\r\n\r\n".utf8)) }
        let answer = readAnswer(fd)
        let d = ContinuousClock.now - start
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        guard let end = answer.firstRange(of: Array("\r\n\r\n".utf8)) else {
            return Upload(status: nil, head: "", body: "", answeredAfter: answeredAfter, sent: sent, seconds: seconds)
        }
        let headText = String(decoding: answer[..<end.lowerBound], as: UTF8.self)
        let status = headText.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        return Upload(
            status: status, head: headText, body: String(decoding: answer[end.upperBound...], as: UTF8.self),
            answeredAfter: answeredAfter, sent: sent, seconds: seconds)
    }

    /// The request head of an upload as `token`'s holder; chunked, or with the length declared.
    static func head(_ method: String, _ path: String, port: Int, token: String, length: Int?) -> String {
        "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: Bearer \(token)\r\n"
            + "Tripline-Reason: limits tests\r\nContent-Type: application/x-ndjson\r\n"
            + (length.map { "Content-Length: \($0)\r\n" } ?? "Transfer-Encoding: chunked\r\n") + "\r\n"
    }

    /// After an attack: the server up, `/healthz` answering within a second, its memory within the budget.
    static func survived(_ server: APITests.Server, before: Int, _ what: String) throws {
        let (health, seconds) = try timed { try APITests.send(server.port, "GET", "/healthz") }
        #expect(health.status == 200, "\(what): /healthz")
        #expect(seconds < 1, "\(what): /healthz took \(seconds) s")
        let after = memory(try pid(server))
        print(
            "\(what): RSS \(megabytes(before)) before, \(megabytes(after.now)) after (peak \(megabytes(after.peak))); "
                + "/healthz in \(String(format: "%.3f", seconds)) s")
        #expect(after.now - before <= growthBudget, "\(what): RSS grew from \(before) to \(after.now) bytes")
    }

    // MARK: Bodies

    /// A 2 GB ingest body, chunked (the server counts) and with its length declared (refused on the head alone):
    /// 413 naming 16 MiB, the connection closed rather than the rest read, the memory within the budget.
    @Test("a 2 GB ingest body: 413 naming 16777216, the rest not read, RSS within 256 MB, /healthz within 1 s")
    func hugeIngestBody() throws {
        let server = try Self.serve()
        defer {
            server.stop()
            try? FileManager.default.removeItem(at: server.dir)
        }
        let pid = try Self.pid(server)
        #expect(try server.call("GET", "/v1/alerts", as: "partner-be").status == 200)
        for chunked in [true, false] {
            let what = "POST /v1/selectors, 2 GB " + (chunked ? "chunked" : "with Content-Length")
            let before = Self.memory(pid).now
            let up = try Self.upload(
                server.port,
                head: Self.head(
                    "POST", "/v1/selectors", port: server.port, token: server.tokens["ingest-1"]!,
                    length: chunked ? nil : Self.hugeBody),
                total: Self.hugeBody, chunked: chunked)
            print("\(what): \(up)")
            #expect(up.status == 413, "\(what): \(up.head)")
            #expect(
                up.body == #"{"type":"about:blank","title":"Content Too Large","status":413,"#
                    + #""detail":"the body is larger than 16777216 bytes","limit":16777216}"#, "\(what)")
            #expect(up.head.lowercased().contains("connection: close"), "\(what): \(up.head)")
            // Refused at the limit (plus what the sockets' buffers hold): the rest is not read.
            #expect(up.sent < 96 * Self.mib, "\(what): the server read on to \(up.sent) bytes")
            try Self.survived(server, before: before, what)
        }
    }

    /// A 2 GB list on a chunked PUT: the server keeps at most the 256 MiB a list may have, then answers 413 naming
    /// them and closes; the client may see the answer or a reset after it.
    @Test("a 2 GB watchlist PUT: 413 naming 268435456, RSS back within 256 MB, /healthz within 1 s")
    func hugeListBody() throws {
        let server = try Self.serve()
        defer {
            server.stop()
            try? FileManager.default.removeItem(at: server.dir)
        }
        let pid = try Self.pid(server)
        #expect(try server.call("GET", "/v1/watchlists", as: "partner-be").status == 200)
        let what = "PUT /v1/watchlists/be-fedpol/huge, 2 GB chunked"
        let before = Self.memory(pid).now
        let up = try Self.upload(
            server.port,
            head: Self.head(
                "PUT", "/v1/watchlists/be-fedpol/huge", port: server.port, token: server.tokens["partner-be"]!,
                length: nil),
            total: Self.hugeBody, chunked: true)
        print("\(what): \(up)")
        if let status = up.status {
            #expect(status == 413, "\(what): \(up.head)")
            #expect(up.head.lowercased().contains("connection: close"), "\(what): \(up.head)")
            #expect(
                up.body.hasSuffix(#""detail":"the body is larger than 268435456 bytes","limit":268435456}"#),
                "\(what): \(up.body)")
        }
        #expect(up.sent < 352 * Self.mib, "\(what): the server read on to \(up.sent) bytes")
        try Self.survived(server, before: before, what)
        // The refused list was not stored.
        #expect(try server.call("GET", "/v1/watchlists/be-fedpol/huge", as: "partner-be").status == 404)
    }

    // MARK: Lines

    /// A 10 MB line between two good ones: over the 64 KiB record limit every reader applies, it is rejected alone,
    /// with its line number and id, exactly as `match` on standard input rejects it; its neighbours are ingested.
    @Test("a 10 MB line between two good ones: rejected alone with its line number, as on standard input")
    func longLine() throws {
        let server = try Self.serve()
        defer {
            server.stop()
            try? FileManager.default.removeItem(at: server.dir)
        }
        let pid = try Self.pid(server)
        let prefix = #"{"id":"huge","type":"phone","value":"+32470000003","note":""#
        let long = prefix + String(repeating: "x", count: 10_000_000 - prefix.count - 2) + #""}"#
        #expect(long.utf8.count == 10_000_000)
        let body =
            #"{"id":"good-1","type":"phone","value":"+32470000004"}"# + "\n" + long + "\n"
            + #"{"id":"good-2","type":"email","value":"someone@example.org"}"# + "\n"
        let before = Self.memory(pid).now
        let reply = try server.call("POST", "/v1/selectors", as: "ingest-1", body: body)
        #expect(reply.status == 202, "\(reply.text.prefix(300))")
        let expected = JSONObject([
            ("line", .number("2")), ("id", .string("huge")),
            ("error", .string("record of 10000000 bytes is over the 64 KiB limit")),
        ])
        #expect(
            reply.json
                == JSONObject([
                    ("accepted", .number("2")), ("rejected", .number("1")), ("rejects", .array([.object(expected)])),
                ]), "\(reply.text.prefix(300))")
        try Self.survived(server, before: before, "POST /v1/selectors with a 10 MB line")
        // Standard input says the same of the same lines.
        let stdin = try CLITests.run(["match", "--config", "tripline.yaml"], stdin: body, cwd: server.dir)
        let rejects = stdin.stderr.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)).objectValue }
        #expect(rejects == [expected], "\(stdin.stderr.prefix(300))")
    }

    // MARK: Connections

    /// This process's limit on open descriptors.
    static func ownFileLimit() -> rlimit {
        var l = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &l)
        return l
    }

    @discardableResult
    static func setFileLimit(soft: rlim_t, hard: rlim_t) -> Bool {
        var l = rlimit(rlim_cur: soft, rlim_max: hard)
        return setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &l) == 0
    }

    /// `Max open files` of /proc/PID/limits: soft, hard.
    static func fileLimits(of pid: Int32) -> [String] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("Max open files") } ?? ""
        return Array(line.dropFirst("Max open files".count).split(separator: " ").prefix(2).map(String.init))
    }

    /// The sockets among a process's descriptors (its listening socket, its connections; not the files libdispatch
    /// and SQLite open for a moment).
    static func sockets(_ pid: Int32) -> Int {
        let dir = "/proc/\(pid)/fd"
        var target = [CChar](repeating: 0, count: 64)
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).count { fd in
            let n = readlink(dir + "/" + fd, &target, target.count - 1)
            return n > 7 && String(decoding: target[0..<7].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "socket:"
        }
    }

    /// The sockets a process holds at rest (the fewest of a few looks: the server side of a request just answered
    /// may not be closed yet).
    static func settledSockets(_ pid: Int32) -> Int {
        (0..<5).map { _ in
            usleep(100_000)
            return sockets(pid)
        }.min() ?? -1
    }

    /// All of a process's descriptors.
    static func descriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// `count` connections to `port`, opened by non-blocking connects in batches of 200 (less than the listen
    /// backlog), `pace` called after each batch with the number opened so far.
    static func connections(_ port: Int, count: Int, pace: (Int) throws -> Void) throws -> [Int32] {
        var fds: [Int32] = []
        do {
            while fds.count < count {
                for _ in 0..<min(200, count - fds.count) {
                    let fd = socket(
                        AF_INET,
                        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                    guard fd >= 0 else { throw TestFailure("socket \(fds.count): errno \(errno)") }
                    fds.append(fd)
                    var addr = loopback(port)
                    let r = withUnsafePointer(to: &addr) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                    guard r == 0 || errno == EINPROGRESS else {
                        throw TestFailure("connect \(fds.count): errno \(errno)")
                    }
                }
                try pace(fds.count)
            }
        } catch {
            for fd in fds { close(fd) }
            throw error
        }
        return fds
    }

    /// 10,000 connections held open (half of them with a partial request line): `serve` raised its own soft limit
    /// on descriptors to the hard one and accepts them all, a normal authenticated request still answers within a
    /// second, the memory stays within the budget, and closing them gives every descriptor back.
    @Test("10,000 idle connections: all accepted, GET /v1/alerts within 1 s, RSS within 256 MB, descriptors freed")
    func idleConnections() throws {
        let saved = Self.ownFileLimit()
        defer { Self.setFileLimit(soft: saved.rlim_cur, hard: saved.rlim_max) }
        // This process needs 10,000 descriptors, and so does the server: 30,000 where the hard limit may be raised
        // (root with CAP_SYS_RESOURCE), else the hard limit, if that is enough.
        var hard = saved.rlim_max
        if hard < 30_000 && Self.setFileLimit(soft: 30_000, hard: 30_000) { hard = 30_000 }
        try #require(hard >= 12_000, "RLIMIT_NOFILE's hard limit is \(hard), and cannot be raised")
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try APITests.Server(dir: dir)
        defer { server.stop() }
        try server.issue("partner-be")
        // The server starts with the common default soft limit (inherited); `serve` raises it to the hard limit.
        Self.setFileLimit(soft: 1024, hard: hard)
        let started = Result { try server.start() }
        Self.setFileLimit(soft: hard, hard: hard)
        try started.get()
        let pid = try Self.pid(server)
        #expect(Self.fileLimits(of: pid) == ["\(hard)", "\(hard)"], "serve's limits: \(Self.fileLimits(of: pid))")

        #expect(try server.call("GET", "/v1/alerts", as: "partner-be").status == 200)
        let before = Self.memory(pid).now
        let sockets = Self.settledSockets(pid)
        let start = ContinuousClock.now
        // Each batch accepted before the next (a burst beyond the listen backlog would have the kernel drop SYNs, or
        // answer with SYN cookies connections the server never hears of, and measure nothing).
        let fds = try Self.connections(server.port, count: 10_000) { opened in
            guard waitUntil(20, { Self.sockets(pid) >= sockets + opened }) else {
                throw TestFailure("the server accepted \(Self.sockets(pid) - sockets) of \(opened)")
            }
        }
        defer { for fd in fds { close(fd) } }
        let opened = ContinuousClock.now - start
        for (i, fd) in fds.enumerated() where i % 2 == 0 {
            let partial = Array("GET /v1/alerts HTTP/1.1\r\nHost: x".utf8)
            #expect(send(fd, partial, partial.count, Int32(MSG_NOSIGNAL)) == partial.count, "connection \(i)")
        }
        usleep(500_000)  // the partial lines read: the connections idle
        let (alerts, seconds) = try Self.timed { try server.call("GET", "/v1/alerts", as: "partner-be") }
        #expect(alerts.status == 200)
        #expect(seconds < 1, "GET /v1/alerts took \(seconds) s")
        let held = Self.memory(pid)
        let holding = Self.sockets(pid) - sockets
        #expect(holding == 10_000, "the server holds \(holding) more sockets")
        print(
            "10,000 idle connections (opened in \(opened)): RSS \(Self.megabytes(before)) before, "
                + "\(Self.megabytes(held.now)) with them open (peak \(Self.megabytes(held.peak))); "
                + "GET /v1/alerts in \(String(format: "%.3f", seconds)) s; server sockets \(sockets) + \(holding)")
        #expect(held.now - before <= Self.growthBudget, "RSS grew from \(before) to \(held.now) bytes")
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
        let closing = ContinuousClock.now
        #expect(
            waitUntil(30) { Self.sockets(pid) == sockets },
            "the server still holds \(Self.sockets(pid) - sockets) more sockets")
        print("closed in \(ContinuousClock.now - closing): RSS \(Self.megabytes(Self.memory(pid).now))")
        try Self.survived(server, before: before, "10,000 idle connections, closed")
    }

    /// `serve` with the deployment, its limit on descriptors `files` (soft and hard, set by the shell that execs it).
    static func start(_ server: APITests.Server, files: Int) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = [
            "-c", "ulimit -n \(files) && exec \"$0\" serve --config tripline.yaml --drain-timeout 2",
            CLITests.binary.path,
        ]
        p.currentDirectoryURL = server.dir
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        let log = server.dir.appendingPathComponent("serve.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        p.standardError = try FileHandle(forWritingTo: log)
        try p.run()
        server.process = p
        guard waitUntil(30, { (try? APITests.send(server.port, "GET", "/healthz"))?.status == 200 || !p.isRunning })
        else { throw TestFailure("serve did not answer on port \(server.port)") }
        guard p.isRunning else {
            throw TestFailure("serve exited: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        }
    }

    /// More clients than descriptors: with a limit of 600 and 590 clients, `serve` holds at most 344 connections
    /// (600 less its reserve of 256) and leaves the others in the listen backlog — it does not run out of
    /// descriptors, which would end it (libdispatch aborts the process when it cannot open /proc/self/task/N/stat)
    /// — and a request waiting behind them is answered once they leave.
    @Test("more connections than descriptors: serve holds what its limit allows, survives, and answers after")
    func connectionsBeyondDescriptors() throws {
        let dir = try AuthorizationTests.deployment()
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try APITests.Server(dir: dir)
        defer { server.stop() }
        try Self.start(server, files: 600)
        let pid = try Self.pid(server)
        #expect(Self.fileLimits(of: pid) == ["600", "600"])
        let sockets = Self.settledSockets(pid)
        var most = 0
        var mostDescriptors = 0
        func sample() {
            most = max(most, Self.sockets(pid) - sockets)
            mostDescriptors = max(mostDescriptors, Self.descriptors(pid))
        }
        let fds = try Self.connections(server.port, count: 590) { _ in
            usleep(300_000)
            sample()
        }
        defer { for fd in fds { close(fd) } }
        // Over two ticks of libdispatch's worker monitor.
        for _ in 0..<10 {
            usleep(300_000)
            sample()
        }
        #expect(server.process?.isRunning == true, "serve ended")
        // 344, and the few a read of the listening socket accepts past the count (NIO accepts up to 4 a read).
        #expect((344...347).contains(most), "serve held \(most) connections")
        #expect(mostDescriptors < 600, "serve had \(mostDescriptors) descriptors open")
        // A request behind them waits, and is answered once they leave.
        let waiting = try Self.connection(server.port, timeout: 10)
        defer { close(waiting) }
        #expect(Self.sendAll(waiting, Array("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)))
        var p = pollfd(fd: waiting, events: Int16(POLLIN), revents: 0)
        #expect(poll(&p, 1, 500) == 0, "answered while the server held all it may")
        for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
        let (answer, seconds) = Self.timed { Self.readAnswer(waiting) }
        let text = String(decoding: answer, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200"), "\(text)")
        print(
            "600 descriptors, 590 clients: serve held \(most) connections (\(mostDescriptors) descriptors), "
                + "answered the waiting request \(String(format: "%.3f", seconds)) s after they left")
        #expect(server.process?.isRunning == true, "serve ended")
    }

    /// How long until the server ends a connection on which the client does `act` (nil: still open after `limit`).
    static func closedAfter(_ fd: Int32, limit: Double, _ act: (Int) -> Bool = { _ in true }) -> Double? {
        let start = ContinuousClock.now
        func elapsed() -> Double {
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
        var step = 0
        while elapsed() < limit {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) > 0 {
                var byte: UInt8 = 0
                if recv(fd, &byte, 1, 0) <= 0 { return elapsed() }  // the end (0) or a reset
                continue  // an answer's bytes: read on to the end
            }
            if !act(step) { return elapsed() }
            step += 1
        }
        return nil
    }

    /// With `http.idle_timeout: 1s`: a connection that sends nothing, one that trickles its request head a byte at a
    /// time (slowloris: no complete head, so nothing counts as activity), and a kept-alive one after its answer are
    /// each closed by the server about a second later. A value out of range is refused by `check`.
    @Test("idle_timeout: silent, trickling and kept-alive connections are closed by the server after it")
    func idleTimeout() throws {
        let server = try Self.serve(http: ", idle_timeout: 1s")
        defer {
            server.stop()
            try? FileManager.default.removeItem(at: server.dir)
        }
        let silent = try Self.connection(server.port)
        defer { close(silent) }
        let s = Self.closedAfter(silent, limit: 10)
        let trickle = try Self.connection(server.port)
        defer { close(trickle) }
        let head = Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n".utf8)
        var trickled = 0
        let t = Self.closedAfter(trickle, limit: 10) { step in
            // One byte every 200 ms (the poll's 100 ms, twice).
            guard step % 2 == 0, trickled < head.count else { return true }
            guard send(trickle, [head[trickled]], 1, Int32(MSG_NOSIGNAL)) == 1 else { return false }
            trickled += 1
            return true
        }
        let kept = try Self.connection(server.port)
        defer { close(kept) }
        #expect(Self.sendAll(kept, Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)))
        let answer = String(decoding: Self.readAnswer(kept), as: UTF8.self)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        let k = Self.closedAfter(kept, limit: 10)
        print(
            "idle_timeout 1s: silent closed after \(s ?? -1) s, trickling after \(t ?? -1) s (\(trickled) bytes), "
                + "kept-alive after \(k ?? -1) s")
        for (what, after) in [("silent", s), ("trickling", t), ("kept-alive", k)] {
            #expect(after.map { $0 >= 0.9 && $0 < 3 } == true, "\(what): \(after.map { "\($0) s" } ?? "still open")")
        }
        #expect(trickled < head.count, "the trickled head was read to its end")

        let config = server.dir.appendingPathComponent("tripline.yaml")
        let text = try String(contentsOf: config, encoding: .utf8)
        for (value, error) in [("0s", "must be longer than 0s"), ("25h", "is at most 24h")] {
            try text.replacingOccurrences(of: "idle_timeout: 1s", with: "idle_timeout: \(value)").write(
                to: config, atomically: true, encoding: .utf8)
            let c = try CLITests.run(["check", "--config", "tripline.yaml"], cwd: server.dir)
            #expect(c.status == 1 && c.stderr.contains("\"idle_timeout\" \(error)"), "\(c.stderr)")
        }
    }

    /// With `http.body_timeout: 1s`: a body trickled a byte every 200 ms — each byte well inside the idle timeout —
    /// is cut off with 408 soon after a second (it is far below 16 KiB/s), and its connection closed; a body sent at
    /// once passes. A value out of range is refused by `check`.
    @Test("body_timeout: a body trickled inside the idle timeout is cut off with 408, a prompt one passes")
    func slowBody() throws {
        let server = try Self.serve(http: ", body_timeout: 1s")
        defer {
            server.stop()
            try? FileManager.default.removeItem(at: server.dir)
        }
        let token = server.tokens["ingest-1"] ?? ""
        let fd = try Self.connection(server.port)
        defer { close(fd) }
        let line = Array(#"{"id":"slow-1","type":"phone","value":"+32470000001"}"#.utf8) + [10]
        #expect(
            Self.sendAll(
                fd, Array(Self.head("POST", "/v1/selectors", port: server.port, token: token, length: 100_000).utf8)))
        let start = ContinuousClock.now
        var sent = 0
        var answer: [UInt8] = []
        while ContinuousClock.now - start < .seconds(10) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 200) > 0 {
                answer = Self.readAnswer(fd)
                break
            }
            guard send(fd, [line[sent % line.count]], 1, Int32(MSG_NOSIGNAL)) == 1 else { break }
            sent += 1
        }
        let d = ContinuousClock.now - start
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        let text = String(decoding: answer, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 408"), "\(text)")
        #expect(text.contains("slower than 16384 bytes per second on average past 1 s"), "\(text)")
        #expect(seconds >= 1 && seconds < 4, "answered after \(seconds) s, \(sent) bytes trickled")
        #expect(Self.closedAfter(fd, limit: 5).map { $0 < 2 } == true, "the connection stays open")
        // A prompt body of a megabyte is not slow.
        let lines = (0..<15_000).map { #"{"id":"p-\#($0)","type":"phone","value":"+3247100\#(String(10000 + $0))"}"# }
        let prompt = try server.call("POST", "/v1/selectors", as: "ingest-1", body: lines.joined(separator: "\n"))
        #expect(prompt.status == 202, "\(prompt.text)")
        #expect(prompt.json?["accepted"] == .number("15000"))
        let config = server.dir.appendingPathComponent("tripline.yaml")
        let original = try String(contentsOf: config, encoding: .utf8)
        for (value, error) in [("0s", "must be longer than 0s"), ("25h", "is at most 24h")] {
            try original.replacingOccurrences(of: "body_timeout: 1s", with: "body_timeout: \(value)").write(
                to: config, atomically: true, encoding: .utf8)
            let c = try CLITests.run(["check", "--config", "tripline.yaml"], cwd: server.dir)
            #expect(c.status == 1 && c.stderr.contains("\"body_timeout\" \(error)"), "\(c.stderr)")
        }
    }
}
