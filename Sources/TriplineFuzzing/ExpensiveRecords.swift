/// Records of up to 64 KiB built to be expensive for the record step — the longest values of every type, the
/// deepest and widest JSON, names shaped to meet many listed terms — for the budget replay (10 ms, 10 MB each).
public enum ExpensiveRecords {
    static let limit = 64 * 1024

    /// `{"id":…,"type":type,"value":value}` with `extra` members, the value cut so the line stays within 64 KiB.
    static func record(_ id: String, _ type: String, value: String, extra: String = "") -> (String, [UInt8]) {
        let head = #"{"id":"\#(id)","type":"\#(type)"\#(extra),"value":""#
        let room = limit - head.utf8.count - 2
        var v = Array(value.utf8.prefix(room))
        while String(validating: v, as: UTF8.self) == nil { v.removeLast() }
        return (id, Array(head.utf8) + v + Array(#""}"#.utf8))
    }

    static func repeated(_ s: String) -> String { String(repeating: s, count: limit / max(1, s.utf8.count) + 1) }

    public static let all: [(String, [UInt8])] = {
        var out: [(String, [UInt8])] = []
        for (type, unit) in [
            ("phone", "7"), ("phone", "+"), ("phone", "０"), ("phone", "+32 470 "), ("phone", "(0)"),
            ("email", "a"), ("email", "a.b+"), ("email", "x@"), ("email", "xn--"), ("email", "é"),
            ("imei", "3"), ("imsi", "2"), ("ip", "1:"), ("ip", "255."), ("username", "telegram:a"),
            ("document", "FR:1"), ("wallet", "1"), ("wallet", "0x"), ("name", "abdelhamid "), ("name", "ع"),
        ] {
            out.append(record("long-\(type)-\(out.count)", type, value: repeated(unit)))
        }
        // Email with a 63-letter label repeated up to the limit, the address just under it.
        let label = String(repeating: "b", count: 63)
        out.append(record("email-labels", "email", value: "a@" + repeated(label + ".")))
        out.append(record("email-253", "email", value: "abou.omar@" + String(repeated("é.").prefix(240)) + "org"))
        // Names at the limits a name may have: 512 bytes, 16 words alike to listed terms, particles, Arabic.
        let alike = ["abdelhamid", "abaaoud", "abou", "omar", "al", "baljiki", "mohammed", "shami", "ivan", "petrov"]
        out.append(
            record("name-16-alike", "name", value: (0..<16).map { alike[$0 % alike.count] }.joined(separator: " ")))
        out.append(record("name-16-particles", "name", value: Array(repeating: "al", count: 16).joined(separator: " ")))
        out.append(
            record(
                "name-512", "name",
                value: String((0..<60).map { alike[$0 % alike.count] }.joined(separator: "-").prefix(512))))
        out.append(record("name-arabic", "name", value: String(repeating: "عبد الله ", count: 8)))
        // JSON shapes: 64 levels of nesting, thousands of members, escapes, long attributes.
        let nested = String(repeating: "[", count: 63) + String(repeating: "]", count: 63)
        out.append(record("deep", "phone", value: "+32 470 12 34 56", extra: #","context":\#(nested)"#))
        let members = (0..<5000).map { #""k\#($0)":\#($0)"# }.joined(separator: ",")
        out.append(record("wide", "phone", value: "+32 470 12 34 56", extra: #","context":{\#(members)}"#))
        out.append(record("escapes", "name", value: String(repeating: #"\u00e9\ud83d\ude00"#, count: 3500)))
        out.append(
            record(
                "source-item", "phone", value: "+32 2 456 12 34",
                extra: #","source":{"item":"\#(String(repeating: "D", count: 60000))","country":"IQ"}"#))
        out.append(
            record(
                "observed", "phone", value: "+32 2 456 12 34",
                extra: #","observed_at":"\#(String(repeating: "2016", count: 15000))""#))
        return out.map { ($0.0, Array($0.1.prefix(limit))) }
    }()
}
