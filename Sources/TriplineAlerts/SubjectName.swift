/// A certificate subject, a distinguished name as RFC 4514 writes it (`CN=partner-be,O=Federal Police,C=BE`: the most
/// specific part first), normalised so that two spellings of one name compare equal and two names differ exactly
/// when their attributes do: attribute types by their short name whatever their case (`cn`, `commonName` and
/// `2.5.4.3` are `CN`), spaces around separators ignored, escapes (`\,`, `\2C`) read, the attributes of a
/// multi-valued RDN in one order. Values compare exactly (case included). Principals of the configuration may name
/// one (`subject:`); the HTTP API maps a verified client certificate's subject to a principal with it (SPEC §10).
public struct SubjectName: Sendable, Hashable, CustomStringConvertible {
    public struct Attribute: Sendable, Hashable {
        /// The short name (`CN`, `O`, `C`, ...), or the dotted OID of a type without one.
        public var type: String
        public var value: String
        public init(type: String, value: String) {
            self.type = SubjectName.shortName(type)
            self.value = value
        }
    }

    /// The RDNs in RFC 4514 order (as written: the most specific first), each RDN's attributes sorted.
    public let rdns: [[Attribute]]

    public init(rdns: [[Attribute]]) {
        self.rdns = rdns.map { $0.sorted { ($0.type, $0.value) < ($1.type, $1.value) } }
    }

    /// The values of the subject's common names (`CN`), in order.
    public var commonNames: [String] { rdns.flatMap { $0 }.filter { $0.type == "CN" }.map(\.value) }

    /// The normalised RFC 4514 string: `TYPE=value`, `+` within an RDN, `,` between RDNs, no spaces added, and the
    /// characters RFC 4514 §2.4 lists escaped with a backslash.
    public var description: String {
        rdns.map { rdn in rdn.map { "\($0.type)=\(Self.escape($0.value))" }.joined(separator: "+") }
            .joined(separator: ",")
    }

    /// A distinguished name as RFC 4514 writes it, or nil when it is not one (a missing `=`, an empty type, an
    /// unescaped `"`, `;`, `<` or `>`, a bad escape, a value in `#` hex form, which is not supported).
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        var i = 0
        var rdns: [[Attribute]] = []
        var rdn: [Attribute] = []
        func skipSpaces() { while i < bytes.count, bytes[i] == 0x20 { i += 1 } }
        while true {
            skipSpaces()
            let typeStart = i
            while i < bytes.count, bytes[i] != UInt8(ascii: "=") { i += 1 }
            guard i < bytes.count else { return nil }
            let type = String(decoding: bytes[typeStart..<i], as: UTF8.self).trimmingSpaces
            guard !type.isEmpty, type.utf8.allSatisfy({ $0.isTypeCharacter }) else { return nil }
            i += 1  // "="
            skipSpaces()
            if i < bytes.count, bytes[i] == UInt8(ascii: "#") { return nil }
            var value: [UInt8] = []
            var kept = 0  // the value's length up to its last character that is not an unescaped space
            var separator: UInt8?
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: ",") || b == UInt8(ascii: "+") {
                    separator = b
                    i += 1
                    break
                }
                if b == UInt8(ascii: "\\") {
                    guard i + 1 < bytes.count else { return nil }
                    let n = bytes[i + 1]
                    if Self.special.contains(n) || n == 0x20 || n == UInt8(ascii: "#") || n == UInt8(ascii: "=") {
                        value.append(n)
                        i += 2
                    } else if i + 2 < bytes.count, let h = n.hexValue, let l = bytes[i + 2].hexValue {
                        value.append(h << 4 | l)
                        i += 3
                    } else {
                        return nil
                    }
                    kept = value.count
                    continue
                }
                if [UInt8(ascii: "\""), UInt8(ascii: ";"), UInt8(ascii: "<"), UInt8(ascii: ">"), 0].contains(b) {
                    return nil
                }
                value.append(b)
                if b != 0x20 { kept = value.count }
                i += 1
            }
            guard let v = String(validating: value.prefix(kept), as: UTF8.self) else { return nil }
            rdn.append(Attribute(type: type, value: v))
            switch separator {
            case UInt8(ascii: "+"): continue
            case UInt8(ascii: ","):
                rdns.append(rdn)
                rdn = []
            default:
                rdns.append(rdn)
                self.init(rdns: rdns)
                return
            }
        }
    }

    /// RFC 4514 §2.4: escaped wherever they are.
    static let special: [UInt8] = Array(#""+,;<>\"#.utf8)

    static func escape(_ value: String) -> String {
        let bytes = Array(value.utf8)
        var out: [UInt8] = []
        for (i, b) in bytes.enumerated() {
            if b == 0 {
                out += Array(#"\00"#.utf8)
            } else if special.contains(b) || (i == 0 && (b == 0x20 || b == UInt8(ascii: "#")))
                || (i == bytes.count - 1 && b == 0x20)
            {
                out += [UInt8(ascii: "\\"), b]
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The short names of RFC 4514 §3 (and E, UID, which OpenSSL writes), by long name and by OID.
    static let shortNames: [String: String] = [
        "COMMONNAME": "CN", "2.5.4.3": "CN", "COUNTRYNAME": "C", "2.5.4.6": "C", "ORGANIZATIONNAME": "O",
        "2.5.4.10": "O", "ORGANIZATIONALUNITNAME": "OU", "2.5.4.11": "OU", "LOCALITYNAME": "L", "2.5.4.7": "L",
        "STATEORPROVINCENAME": "ST", "2.5.4.8": "ST", "STREETADDRESS": "STREET", "2.5.4.9": "STREET",
        "DOMAINCOMPONENT": "DC", "0.9.2342.19200300.100.1.25": "DC", "USERID": "UID",
        "0.9.2342.19200300.100.1.1": "UID", "EMAILADDRESS": "E", "EMAIL": "E", "1.2.840.113549.1.9.1": "E",
    ]

    static func shortName(_ type: String) -> String {
        var t = type.uppercased()
        if t.hasPrefix("OID.") { t.removeFirst(4) }
        return shortNames[t] ?? t
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

extension UInt8 {
    fileprivate var isTypeCharacter: Bool {
        (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self) || (0x30...0x39).contains(self)
            || self == UInt8(ascii: "-") || self == UInt8(ascii: ".")
    }

    fileprivate var hexValue: UInt8? {
        switch self {
        case 0x30...0x39: self - 0x30
        case 0x41...0x46: self - 0x41 + 10
        case 0x61...0x66: self - 0x61 + 10
        default: nil
        }
    }
}
