import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import TriplineOperations

/// The API as a service of `serve`'s group: Hummingbird on the configured address, over TLS when configured.
public enum APIServer {
    /// The application for `services` on `host:port` (port 0: any free port; `onRunning` hears the port bound);
    /// HTTPS with `tls` (from `tlsConfiguration`), plain HTTP without; a connection silent for `idleTimeout` seconds is
    /// closed (`http.idle_timeout`, `defaultIdleTimeout`).
    public static func application(
        _ services: APIServices, host: String, port: Int, tls: TLSConfiguration? = nil,
        idleTimeout: Double = defaultIdleTimeout, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        Application(
            router: API.router(services, logger: logger),
            server: try tls.map {
                try HTTPServerBuilder.tls(.http1(configuration: http1(idleTimeout)), tlsConfiguration: $0)
            } ?? .http1(configuration: http1(idleTimeout)),
            configuration: .init(
                address: .hostname(host, port: port), serverName: "tripline",
                availableConnectionsDelegate: .maximum(maxConnections(), logger: logger)),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// HTTP/1.1 with connections closed after `idleTimeout` seconds of silence (a header trickled in counts as none).
    static func http1(_ idleTimeout: Double) -> HTTP1Channel.Configuration {
        .init(idleTimeout: .nanoseconds(Int64(idleTimeout * 1e9)))
    }

    /// Why TLS could not be set up from the configured files: the file, and what is wrong with it.
    public struct TLSFileError: Error, CustomStringConvertible {
        public var file: String
        public var problem: String
        public var description: String { "\(file): \(problem)" }
    }

    /// The server's TLS from `http.tls` (SPEC §10): the certificate chain and key read from their PEM files; with a
    /// client CA, client certificates are requested and, when one is presented, verified against that CA alone
    /// (the handshake fails for one it did not sign, or one expired) — a client without one still connects, and
    /// authenticates with a bearer token (NIOSSL's `.optionalVerification`; `.noHostnameVerification` would
    /// refuse every client without a certificate). TLS 1.2 at least.
    public static func tlsConfiguration(
        certFile: String, keyFile: String, clientCAFile: String?
    ) throws(TLSFileError) -> TLSConfiguration {
        let chain = try certificates(certFile, "the certificate chain")
        let keyBytes = try contents(keyFile)
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem) } catch {
            throw TLSFileError(file: keyFile, problem: "not a PEM private key, or an encrypted one (\(error))")
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        if let clientCAFile {
            tls.trustRoots = .certificates(try certificates(clientCAFile, "the client CA"))
            tls.certificateVerification = .optionalVerification
            tls.sendCANameList = true
        }
        // The context checks what the files cannot say alone: the key belongs to the certificate.
        do { _ = try NIOSSLContext(configuration: tls) } catch {
            throw TLSFileError(
                file: keyFile, problem: "the private key cannot be used with the certificate of \(certFile) (\(error))")
        }
        return tls
    }

    static func contents(_ file: String) throws(TLSFileError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: file) else {
            let problem =
                FileManager.default.fileExists(atPath: file) ? "cannot be read" : "no such file"
            throw TLSFileError(file: file, problem: problem)
        }
        return Array(data)
    }

    static func certificates(_ file: String, _ what: String) throws(TLSFileError) -> [NIOSSLCertificate] {
        let bytes = try contents(file)
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMBytes(bytes) } catch {
            throw TLSFileError(file: file, problem: "\(what) could not be read as PEM certificates (\(error))")
        }
        guard !chain.isEmpty else { throw TLSFileError(file: file, problem: "\(what) holds no PEM certificate") }
        return chain
    }

    /// The OpenAPI document kept in the repository (Sources/TriplineHTTP/Resources/openapi.json).
    public static var openAPIDocument: [UInt8] {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
            let data = try? Data(contentsOf: url)
        else { return Array("{}".utf8) }
        return Array(data)
    }
}
