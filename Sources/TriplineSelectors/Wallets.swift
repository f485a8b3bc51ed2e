import Crypto
import TriplineJSON

/// Cryptocurrency addresses: chain detected or given, canonical case where the chain defines one,
/// checksums verified (Base58Check, Bech32/Bech32m).
enum Wallets {
    static func normalize(_ text: String, chain given: String?) throws(SelectorError) -> (String, JSONObject) {
        // A payment URI (BIP 21) may carry a long query (a Lightning invoice): 4 KiB of text. The address itself is
        // bounded below, before any decoding (Base58 is quadratic: a 64 KiB value took 12 ms).
        guard text.utf8.count <= 4096 else {
            throw SelectorError("wallet: \(text.utf8.count) bytes, longer than any payment URI")
        }
        var t = text
        var chain = given?.lowercased()
        if let colon = t.firstIndex(of: ":") {  // bitcoin:bc1..., ethereum:0x...
            let scheme = t[..<colon].lowercased()
            if ["bitcoin", "ethereum", "litecoin", "tron"].contains(scheme) {
                chain = chain ?? scheme
                t = String(t[t.index(after: colon)...])
                if let q = t.firstIndex(of: "?") { t = String(t[..<q]) }
            }
        }
        // The longest address of any chain is a Monero integrated address (106 characters).
        guard t.utf8.count <= 128 else { throw SelectorError("wallet: \(t.utf8.count) bytes, longer than any address") }
        guard !t.isEmpty, t.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw SelectorError("wallet: an address has letters and digits only")
        }
        let lower = t.lowercased()
        var f = JSONObject()
        var value = t
        var ok: Bool
        if lower.hasPrefix("0x") && t.count == 42 {
            chain = chain ?? "ethereum"
            value = "0x" + lower.dropFirst(2)  // EIP-55 case is a checksum, not identity: compare lower-case
            ok = lower.dropFirst(2).allSatisfy { $0.isHexDigit }
        } else if lower.hasPrefix("bc1") || lower.hasPrefix("tb1") || lower.hasPrefix("ltc1") {
            chain = chain ?? (lower.hasPrefix("ltc1") ? "litecoin" : "bitcoin")
            guard t == lower || t == t.uppercased() else { throw SelectorError("wallet: bech32 address in mixed case") }
            value = lower
            ok = bech32Valid(lower)
        } else if let payload = base58CheckDecode(t) {
            ok = true
            if chain == nil {
                switch payload.first {
                case 0x00, 0x05: chain = "bitcoin"
                case 0x41: chain = "tron"
                case 0x30, 0x32: chain = "litecoin"
                default: chain = "unknown"
                }
            }
        } else {
            ok = false
            chain = chain ?? "unknown"
        }
        f.append("valid", .bool(ok))
        if !ok { f.append("invalid_reason", .string("address checksum does not verify")) }
        f.append("chain", .string(chain ?? "unknown"))
        return (value, f)
    }

    static let base58Alphabet = Array("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)

    /// The payload without its 4-byte checksum, or nil when it is not valid Base58Check.
    static func base58CheckDecode(_ s: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        for c in s.utf8 {
            guard let v = base58Alphabet.firstIndex(of: c) else { return nil }
            var carry = v
            for i in stride(from: bytes.count - 1, through: 0, by: -1) {
                carry += Int(bytes[i]) * 58
                bytes[i] = UInt8(carry & 0xFF)
                carry >>= 8
            }
            while carry > 0 {
                bytes.insert(UInt8(carry & 0xFF), at: 0)
                carry >>= 8
            }
        }
        let zeros = s.utf8.prefix(while: { $0 == UInt8(ascii: "1") }).count
        bytes = [UInt8](repeating: 0, count: zeros) + bytes
        guard bytes.count > 4 else { return nil }
        let body = Array(bytes.dropLast(4))
        let check = Array(SHA256.hash(data: Array(SHA256.hash(data: body)))).prefix(4)
        return Array(bytes.suffix(4)) == Array(check) ? body : nil
    }

    static func bech32Valid(_ s: String) -> Bool {
        let charset = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
        guard let sep = s.lastIndex(of: "1") else { return false }
        let hrp = Array(s[..<sep].utf8)
        let data = s[s.index(after: sep)...].utf8.compactMap { c in charset.firstIndex(of: c).map(UInt32.init) }
        guard data.count == s[s.index(after: sep)...].utf8.count, data.count >= 6, !hrp.isEmpty else { return false }
        var values: [UInt32] = hrp.map { UInt32($0 >> 5) } + [0] + hrp.map { UInt32($0 & 31) }
        values += data
        var chk: UInt32 = 1
        let gen: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]
        for v in values {
            let b = chk >> 25
            chk = (chk & 0x1ff_ffff) << 5 ^ v
            for i in 0..<5 where (b >> UInt32(i)) & 1 == 1 { chk ^= gen[i] }
        }
        return chk == 1 || chk == 0x2bc8_30a3  // Bech32 (BIP 173) or Bech32m (BIP 350)
    }
}
