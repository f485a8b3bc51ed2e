/// Writes compact JSON (no insignificant whitespace) into a byte buffer.
public struct JSONWriter {
    public var bytes: [UInt8] = []

    public init() { bytes.reserveCapacity(512) }

    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: append("null")
        case .bool(let b): append(b ? "true" : "false")
        case .number(let n): append(n)
        case .string(let s): writeString(s)
        case .array(let a):
            bytes.append(UInt8(ascii: "["))
            for k in a.indices {
                if k > 0 { bytes.append(UInt8(ascii: ",")) }
                write(a[k])
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let o): write(o)
        }
    }

    public mutating func write(_ object: JSONObject) {
        bytes.append(UInt8(ascii: "{"))
        let members = object.members
        for i in members.indices {  // by index: no copy of each member
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            writeString(members[i].key)
            bytes.append(UInt8(ascii: ":"))
            write(members[i].value)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// Appends JSON written before (by a `JSONWriter`): a value kept rendered is not written again.
    public mutating func writeRendered(_ json: [UInt8]) { bytes.append(contentsOf: json) }

    @inline(__always)
    mutating func append(_ s: String) { bytes.append(contentsOf: s.utf8) }

    public mutating func writeString(_ s: String) {
        var copy = s
        copy.withUTF8 { buf in
            // Fast path: nothing to escape, copy the bytes at once.
            var clean = true
            for b in buf where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                clean = false
                break
            }
            if clean {
                bytes.append(UInt8(ascii: "\""))
                bytes.append(contentsOf: buf)
                bytes.append(UInt8(ascii: "\""))
            } else {
                writeEscaped(buf)
            }
        }
    }

    private mutating func writeEscaped(_ buf: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        for b in buf {
            switch b {
            case UInt8(ascii: "\""): append("\\\"")
            case UInt8(ascii: "\\"): append("\\\\")
            case 0x0A: append("\\n")
            case 0x0D: append("\\r")
            case 0x09: append("\\t")
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                append("\\u00")
                bytes.append(hex[Int(b >> 4)])
                bytes.append(hex[Int(b & 15)])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// One value as compact JSON text.
    public static func string(_ value: JSONValue) -> String {
        var w = JSONWriter()
        w.write(value)
        return String(decoding: w.bytes, as: UTF8.self)
    }
}
