import TriplineJSON

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// IPv4 and IPv6 addresses in canonical text (dotted quad; RFC 5952 for IPv6).
public enum IPAddress {
    /// 16 bytes; IPv4 as its IPv4-mapped IPv6 form (::ffff:a.b.c.d) so one trie serves both.
    public struct Bytes: Hashable, Sendable {
        public var bytes: [UInt8]
        public var version: Int
    }

    public static func parse(_ text: String) -> Bytes? {
        var t = text
        if t.hasPrefix("[") && t.hasSuffix("]") { t = String(t.dropFirst().dropLast()) }
        if let pct = t.firstIndex(of: "%") { t = String(t[..<pct]) }  // zone index
        if t.contains("."), !t.contains(":") {
            // Strict dotted decimal: four parts, each 0-255 (leading zeros read as decimal).
            let parts = t.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var b: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]
            for p in parts {
                guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(p), v <= 255
                else { return nil }
                b.append(UInt8(v))
            }
            return Bytes(bytes: b, version: 4)
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, t, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        return Bytes(bytes: b, version: 6)
    }

    public static func format(_ a: Bytes) -> String {
        if a.version == 4 { return a.bytes[12...].map { String($0) }.joined(separator: ".") }
        var v6 = in6_addr()
        withUnsafeMutableBytes(of: &v6) { $0.copyBytes(from: a.bytes) }
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        _ = inet_ntop(AF_INET6, &v6, &buf, socklen_t(buf.count))
        let end = buf.firstIndex(of: 0) ?? buf.count
        return String(decoding: buf[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func normalize(_ text: String) throws(SelectorError) -> (String, JSONObject) {
        guard let a = parse(text) else { throw SelectorError("ip: \"\(text)\" is not an IPv4 or IPv6 address") }
        var f = JSONObject()
        f.append("version", .number(String(a.version)))
        return (format(a), f)
    }
}
