import TriplineJSON

/// IMEI (Luhn, IMEISV reduction, TAC) and IMSI (MCC -> country, MNC).
enum DeviceIDs {
    static func digitsOnly(_ text: String, what: String) throws(SelectorError) -> [UInt8] {
        var out: [UInt8] = []
        for c in text.unicodeScalars {
            if let d = PhoneParser.decimalValue(c) {
                out.append(d)
            } else if c == " " || c == "-" || c == "/" || c == "." {
                continue
            } else {
                throw SelectorError("\(what): unexpected character '\(c)'")
            }
        }
        return out
    }

    /// The Luhn check digit for `body` (the digits before it).
    static func luhnCheckDigit(_ body: ArraySlice<UInt8>) -> UInt8 {
        var sum = 0
        for (k, d) in body.reversed().enumerated() {
            var v = Int(d)
            if k % 2 == 0 {
                v *= 2
                if v > 9 { v -= 9 }
            }
            sum += v
        }
        return UInt8((10 - sum % 10) % 10)
    }

    static func imei(_ text: String) throws(SelectorError) -> (String, JSONObject) {
        var t = text
        if t.lowercased().hasPrefix("imei:") { t = String(t.dropFirst(5)) }
        let d = try digitsOnly(t, what: "imei")
        var f = JSONObject()
        var imei: [UInt8]
        switch d.count {
        case 14:  // without its check digit
            imei = d + [luhnCheckDigit(d[...])]
            f.append("valid", .bool(true))
        case 15:
            imei = d
            let ok = luhnCheckDigit(d[0..<14]) == d[14]
            f.append("valid", .bool(ok))
            if !ok { f.append("invalid_reason", .string("Luhn check digit should be \(luhnCheckDigit(d[0..<14]))")) }
        case 16:  // IMEISV: 14 digits, then a 2-digit software version; the IMEI gets its check digit
            imei = Array(d[0..<14]) + [luhnCheckDigit(d[0..<14])]
            f.append("valid", .bool(true))
        default:
            throw SelectorError("imei: \(d.count) digits (an IMEI has 15, an IMEISV 16)")
        }
        let s = String(decoding: imei.map { $0 + 48 }, as: UTF8.self)
        f.append("tac", .string(String(s.prefix(8))))
        return (s, f)
    }

    static func imsi(_ text: String) throws(SelectorError) -> (String, JSONObject) {
        let d = try digitsOnly(text, what: "imsi")
        guard d.count == 14 || d.count == 15 else {
            throw SelectorError("imsi: \(d.count) digits (an IMSI has 14 or 15)")
        }
        let s = String(decoding: d.map { $0 + 48 }, as: UTF8.self)
        let mcc = String(s.prefix(3))
        let mncLength = MobileCountryCodes.threeDigitMNC.contains(mcc) ? 3 : 2
        var f = JSONObject()
        if let c = MobileCountryCodes.country[mcc] { f.append("country", .string(c)) }
        f.append("mcc", .string(mcc))
        f.append("mnc", .string(String(s.dropFirst(3).prefix(mncLength))))
        return (s, f)
    }
}
