import ArgumentParser
import Foundation
import TriplineJSON

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The command line as a client of the HTTP API (`--server URL`, the token from `--token-file` or `TRIPLINE_TOKEN`),
/// as `amtool` is of Alertmanager's: the server decides with the token's principal; the reason goes as
/// `Tripline-Reason`.
struct RemoteAPI {
    let base: String
    let token: String
    let reason: String

    /// One request; the JSON answer of a 2xx, else the problem's detail printed and exit 1 (2 for a 5xx or no
    /// answer).
    func call(_ method: String, _ path: String, query: [(String, String)] = [], body: JSONObject? = nil) throws
        -> JSONValue?
    {
        var components = URLComponents(string: base + path)
        if !query.isEmpty { components?.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        guard let url = components?.url else { throw ValidationError("--server \(base) is not a URL") }
        var request = URLRequest(url: url, timeoutInterval: 60)
        request.httpMethod = method
        request.setValue("Bearer " + token, forHTTPHeaderField: "Authorization")
        request.setValue(reason, forHTTPHeaderField: "Tripline-Reason")
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(JSONWriter.string(.object(body)).utf8)
        }
        let result = Exchange.run(request)
        guard let http = result.response else {
            printError("tripline: \(base): \(result.error.map { "\($0)" } ?? "no answer")")
            throw ExitCode(2)
        }
        let data = result.data
        let value = data.isEmpty ? nil : try? JSONParser.parse(String(decoding: data, as: UTF8.self))
        if (200..<300).contains(http.statusCode) { return value }
        if (300..<400).contains(http.statusCode) {
            printError(
                "tripline: \(http.statusCode): the server redirects to \(http.value(forHTTPHeaderField: "Location") ?? "?"); "
                    + "not followed (the token goes to --server alone)")
            throw ExitCode(1)
        }
        let detail = value?.objectValue?["detail"]?.stringValue ?? value?.objectValue?["title"]?.stringValue ?? ""
        printError("tripline: \(http.statusCode) \(detail)")
        throw ExitCode(http.statusCode >= 500 ? 2 : 1)
    }
}

/// One request on its own session, whose redirects are not followed: a redirect would carry the token (in
/// `Authorization`) to wherever it points. Swift's URLSession asks its delegate about a redirect only for a task
/// without a completion handler, so the answer is gathered here.
final class Exchange: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    var response: HTTPURLResponse?
    var data = Data()
    var error: (any Error)?
    let done = DispatchSemaphore(value: 0)

    static func run(_ request: URLRequest) -> Exchange {
        let exchange = Exchange()
        let session = URLSession(configuration: .ephemeral, delegate: exchange, delegateQueue: nil)
        let task = session.dataTask(with: request)
        task.resume()
        exchange.done.wait()
        exchange.response = exchange.response ?? task.response as? HTTPURLResponse
        session.finishTasksAndInvalidate()
        return exchange
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void
    ) {
        self.response = response
        completionHandler(nil)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        self.data.append(data)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        self.error = error
        done.signal()
    }
}

extension Actor {
    /// Whether `--server` keeps the token off the network in clear: https, or http to this machine.
    static func safeServer(_ server: String) -> Bool {
        guard let url = URL(string: server), let scheme = url.scheme?.lowercased() else { return false }
        if scheme == "https" { return true }
        let host = (url.host ?? "").lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return scheme == "http" && (host == "localhost" || host == "::1" || host.hasPrefix("127."))
    }

    /// The API client when `--server` is given.
    func remote() throws -> RemoteAPI? {
        guard let server else { return nil }
        guard Self.safeServer(server) else {
            throw ValidationError(
                "--server \(server): https://, or http:// to this machine (127.0.0.1, localhost) only: the token "
                    + "would cross the network in clear")
        }
        let token: String
        if let tokenFile {
            guard let d = FileManager.default.contents(atPath: tokenFile) else {
                throw ValidationError("cannot read --token-file \(tokenFile)")
            }
            token = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let t = ProcessInfo.processInfo.environment["TRIPLINE_TOKEN"] {
            token = t.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            throw ValidationError("--server needs a token: --token-file F or TRIPLINE_TOKEN")
        }
        if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must not be empty") }
        return RemoteAPI(base: server.hasSuffix("/") ? String(server.dropLast()) : server, token: token, reason: reason)
    }
}
