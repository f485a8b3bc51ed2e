import TriplineJSON

/// The selector types of SPEC §3.
public enum SelectorType: String, Sendable, CaseIterable, Hashable {
    case phone, email, imei, imsi, ip, username, document, wallet, name
}

/// Why a record or a value was rejected.
public struct SelectorError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One input record, as read from NDJSON.
public struct SelectorInput: Sendable {
    public var id: String
    public var type: SelectorType
    public var value: String
    public var observedAt: String?
    public var source: JSONValue?
    public var context: JSONValue?
    /// Type-specific input fields: `country` (document), `platform` (username), `chain` (wallet), `kind` (document).
    public var country: String?
    public var platform: String?
    public var chain: String?
    public var kind: String?

    public init(id: String, type: SelectorType, value: String) {
        self.id = id
        self.type = type
        self.value = value
    }

    /// Reads and validates a record; the error names the first problem.
    public init(json: JSONObject) throws(SelectorError) {
        func text(_ key: String, required: Bool) throws(SelectorError) -> String? {
            guard let v = json[key] else {
                if required { throw SelectorError("missing field \"\(key)\"") }
                return nil
            }
            guard case .string(let s) = v else {
                throw SelectorError("field \"\(key)\" must be a string, not \(v.typeName)")
            }
            if required && s.isEmpty { throw SelectorError("field \"\(key)\" is empty") }
            return s
        }
        let id = try text("id", required: true)!
        let typeName = try text("type", required: true)!
        guard let type = SelectorType(rawValue: typeName) else {
            throw SelectorError(
                "unknown type \"\(typeName)\" (expected one of \(SelectorType.allCases.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        self.init(id: id, type: type, value: try text("value", required: true)!)
        observedAt = try text("observed_at", required: false)
        if let at = observedAt, Timestamp.parse(at) == nil {
            throw SelectorError("observed_at \"\(at)\" is not an RFC 3339 timestamp")
        }
        for key in ["source", "context"] {
            if let v = json[key] {
                guard case .object = v else {
                    throw SelectorError("field \"\(key)\" must be an object, not \(v.typeName)")
                }
            }
        }
        source = json["source"]
        context = json["context"]
        country = try text("country", required: false)
        platform = try text("platform", required: false)
        chain = try text("chain", required: false)
        kind = try text("kind", required: false)
    }

    /// Region hints for national phone numbers, in SPEC order (the configured default is added by the caller).
    public var regionHints: [String] {
        guard case .object(let src)? = source else { return [] }
        var out: [String] = []
        for key in ["sim_country", "country"] {
            if case .string(let s)? = src[key], !s.isEmpty {
                let up = s.uppercased()
                if !out.contains(up) { out.append(up) }
            }
        }
        return out
    }
}

/// A normalised, enriched selector: SPEC §3's output record.
public struct NormalizedSelector: Sendable {
    public var id: String
    public var type: SelectorType
    public var value: String
    public var raw: String
    public var observedAt: String?
    public var source: JSONValue?
    public var context: JSONValue?
    /// The enrichment, in output order (`valid`, `invalid_reason`, `country`, ...).
    public var fields: JSONObject

    public init(input: SelectorInput, value: String, fields: JSONObject) {
        id = input.id
        type = input.type
        self.value = value
        raw = input.value
        observedAt = input.observedAt
        source = input.source
        context = input.context
        self.fields = fields
    }

    /// The record as SPEC §3 prints it.
    public var json: JSONObject {
        var o = JSONObject()
        o.append("id", .string(id))
        o.append("type", .string(type.rawValue))
        o.append("value", .string(value))
        o.append("raw", .string(raw))
        for (k, v) in fields { o[k] = v }
        if let observedAt { o.append("observed_at", .string(observedAt)) }
        if let source { o.append("source", source) }
        if let context { o.append("context", context) }
        return o
    }

    /// A field by its dotted name, as rules and matchers see it.
    public func field(_ name: String) -> JSONValue? {
        switch name {
        case "id": return .string(id)
        case "type": return .string(type.rawValue)
        case "value": return .string(value)
        case "raw": return .string(raw)
        case "observed_at": return observedAt.map { .string($0) }
        default:
            if name.hasPrefix("source.") { return source?[path: String(name.dropFirst(7))] }
            if name.hasPrefix("context.") { return context?[path: String(name.dropFirst(8))] }
            return fields[name]
        }
    }

    public var isValid: Bool {
        if case .bool(false)? = fields["valid"] { return false }
        return true
    }
}
