import Foundation
import TriplineAlerts
import TriplineJSON
import TriplineYAML

/// What a sink needs to read its `<type>_configs` entries: paths are relative to the configuration file, and a
/// template named must exist.
public struct SinkConfigContext {
    public var resolve: (String) -> String
    public var templates: [Template]
    public init(resolve: @escaping (String) -> String, templates: [Template]) {
        self.resolve = resolve
        self.templates = templates
    }
}

/// How one integration type's entries are configured: the keys it knows (a nested mapping such as `tls_config`
/// flattened to `tls_config.KEY`), those it needs, and its own checks of a value and of the whole entry.
public struct SinkConfigSpec {
    public var keys: Set<String>
    public var nested: Set<String> = []
    public var required: [String] = []
    /// Keys whose value is `true` or `false`.
    public var booleans: Set<String> = ["send_resolved"]
    /// Network deadlines: a positive duration, at most 24 h.
    public var deadlines: Set<String> = []
    public var check: (_ key: String, _ value: String, _ node: Node) throws(LocatedError) -> Void = { _, _, _ in }
    public var checkEntry: (_ settings: JSONObject, _ node: Node) throws(LocatedError) -> Void = { _, _ in }
    public init(keys: Set<String>) { self.keys = keys }
}

/// The one reader of integration entries, shared by every sink.
public enum SinkConfig {
    /// Keys that name a secret: never inline, only `KEY_file` or `KEY_env` (SPEC §6).
    public static let secretKeys = ["auth_password", "password", "secret", "token", "api_key", "auth_secret"]
    /// The longest network deadline (SPEC §6: connect, reply, whole message or request).
    public static let maxNetworkDeadline = 86_400.0

    /// Reads one `<type>_configs` entry by `spec`: known keys only, secrets refused inline, `*_file` paths
    /// resolved, booleans, deadlines and templates checked, the required keys present — every error at its place.
    public static func read(_ n: Node, type: String, spec: SinkConfigSpec, context: SinkConfigContext)
        throws(LocatedError) -> JSONObject
    {
        let what = type + "_configs"
        guard let m = n.mapping else { throw n.error("each of \(what) must be a mapping") }
        var out = JSONObject()
        func add(_ key: String, _ k: Node, _ v: Node) throws(LocatedError) {
            let base = key.split(separator: ".").last.map(String.init) ?? key
            if secretKeys.contains(base) {
                throw k.error("\"\(key)\" must not be inline: use \(key)_file (a path) or \(key)_env (a variable)")
            }
            guard spec.keys.contains(key) else {
                throw k.error(
                    "unknown key \"\(key)\" in \(what) (known: \(spec.keys.sorted().joined(separator: ", ")))")
            }
            guard let value = v.scalar, !v.isNull else { throw v.error("\"\(key)\" must be a string") }
            if spec.booleans.contains(base) && value != "true" && value != "false" {
                throw v.error("\"\(key)\" is true or false")
            }
            if spec.deadlines.contains(base) {
                guard let d = parseDuration(value) else {
                    throw v.error("\"\(base)\" must be a duration such as 0s, 30s, 5m, 4h")
                }
                guard d > 0 else { throw v.error("\"\(base)\" must be longer than 0s") }
                guard d <= maxNetworkDeadline else { throw v.error("\"\(base)\" is at most 24h (\(value) is longer)") }
            }
            if base == "template" && !context.templates.contains(where: { $0.name == value }) {
                throw v.error("unknown template \"\(value)\"")
            }
            try spec.check(key, value, v)
            out.append(key, .string(key.hasSuffix("_file") || key == "path" ? context.resolve(value) : value))
        }
        for (k, v) in m {
            let key = k.scalar ?? ""
            if spec.nested.contains(key) {
                guard let inner = v.mapping else { throw v.error("\"\(key)\" must be a mapping") }
                for (ik, iv) in inner { try add(key + "." + (ik.scalar ?? ""), ik, iv) }
            } else {
                try add(key, k, v)
            }
        }
        for r in spec.required where out[r] == nil { throw n.error("each of \(what) needs \"\(r)\"") }
        try spec.checkEntry(out, n)
        return out
    }
}
