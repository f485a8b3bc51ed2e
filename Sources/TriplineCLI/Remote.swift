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
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: (Data?, URLResponse?, (any Error)?)
        URLSession.shared.dataTask(with: request) { d, r, e in
            result = (d, r, e)
            done.signal()
        }.resume()
        done.wait()
        guard let http = result.1 as? HTTPURLResponse else {
            printError("tripline: \(base): \(result.2.map { "\($0)" } ?? "no answer")")
            throw ExitCode(2)
        }
        let data = result.0 ?? Data()
        let value = data.isEmpty ? nil : try? JSONParser.parse(String(decoding: data, as: UTF8.self))
        if (200..<300).contains(http.statusCode) { return value }
        let detail = value?.objectValue?["detail"]?.stringValue ?? value?.objectValue?["title"]?.stringValue ?? ""
        printError("tripline: \(http.statusCode) \(detail)")
        throw ExitCode(http.statusCode >= 500 ? 2 : 1)
    }
}

extension Actor {
    /// The API client when `--server` is given.
    func remote() throws -> RemoteAPI? {
        guard let server else { return nil }
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
