/// RFC 3339 timestamps as seconds since the Unix epoch (UTC), without Foundation's formatter costs.
public enum Timestamp {
    /// Parses `2016-10-20T08:15:00Z`, `...08:15:00.123+02:00` or a date alone (`2031-05-01`, midnight UTC).
    public static func parse(_ s: String) -> Double? {
        var text = s
        return text.withUTF8 { parse($0) }
    }

    /// The same over UTF-8 bytes (no copy of the text on the per-record path).
    public static func parse(_ b: UnsafeBufferPointer<UInt8>) -> Double? {
        func num(_ from: Int, _ n: Int) -> Int? {
            guard from + n <= b.count else { return nil }
            var v = 0
            for k in from..<(from + n) {
                guard b[k] >= 48 && b[k] <= 57 else { return nil }
                v = v * 10 + Int(b[k] - 48)
            }
            return v
        }
        guard let y = num(0, 4), b.count >= 10, b[4] == 45, let mo = num(5, 2), b[7] == 45, let d = num(8, 2),
            (1...12).contains(mo), d >= 1, d <= daysIn(mo, y)
        else { return nil }
        let days = daysFromCivil(y, mo, d)
        if b.count == 10 { return Double(days) * 86400 }
        guard b.count >= 20, b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == 32,
            let h = num(11, 2), b[13] == 58, let mi = num(14, 2), b[16] == 58, let sec = num(17, 2),
            h < 24, mi < 60, sec <= 60
        else { return nil }
        var i = 19
        var frac = 0.0
        if b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            let s0 = i
            while i < b.count && b[i] >= 48 && b[i] <= 57 {
                frac += Double(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            if i == s0 { return nil }
        }
        guard i < b.count else { return nil }
        var offset = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            guard let oh = num(i + 1, 2), b.count > i + 3, b[i + 3] == 58, let om = num(i + 4, 2), oh < 24, om < 60
            else { return nil }
            offset = (oh * 60 + om) * 60 * (b[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        return Double(days) * 86400 + Double(h * 3600 + mi * 60 + sec - offset) + frac
    }

    /// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC, whole seconds; the year padded to
    /// four digits) — the one time formatter of alerts, records and views.
    public static func format(_ t: Double) -> String {
        let secs = t.isFinite ? Int(max(-1e15, min(1e15, t)).rounded(.down)) : 0
        let days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        let rem = secs - days * 86400
        let (y, m, d) = civilFromDays(days)
        guard (0...9999).contains(y) else {
            func p2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
            return "\(y)-\(p2(m))-\(p2(d))T\(p2(rem / 3600)):\(p2(rem / 60 % 60)):\(p2(rem % 60))Z"
        }
        return String(unsafeUninitializedCapacity: 20) { b in
            func put(_ at: Int, _ v: Int, _ width: Int) {
                var v = v
                for k in stride(from: at + width - 1, through: at, by: -1) {
                    b[k] = UInt8(48 + v % 10)
                    v /= 10
                }
            }
            put(0, y, 4)
            b[4] = 45  // -
            put(5, m, 2)
            b[7] = 45
            put(8, d, 2)
            b[10] = 84  // T
            put(11, rem / 3600, 2)
            b[13] = 58  // :
            put(14, rem / 60 % 60, 2)
            b[16] = 58
            put(17, rem % 60, 2)
            b[19] = 90  // Z
            return 20
        }
    }

    static func daysIn(_ m: Int, _ y: Int) -> Int {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days-from-civil algorithm (public domain description).
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
