import Foundation
import TriplineRules
import TriplineSelectors
import TriplineYAML

/// What the stream commands need from `tripline.yaml` (the rest of the config belongs to `serve`).
struct Settings {
    var rules = "Rules"
    var watchlists = "Watchlists"
    var defaultRegion: String?
    var configFile: String?
    var correlation = CorrelationOptions()

    /// `--config F`, else `tripline.yaml` in the working directory, else the embedded defaults.
    static func load(config: String?) throws(LocatedError) -> Settings {
        var s = Settings()
        let path: String
        if let config {
            path = config
        } else if FileManager.default.fileExists(atPath: "tripline.yaml") {
            path = "tripline.yaml"
        } else {
            return s
        }
        s.configFile = path
        guard let root = try YAMLReader().read(path: path) else { return s }
        guard root.mapping != nil else { throw root.error("the configuration must be a mapping") }
        let base = (path as NSString).deletingLastPathComponent
        func resolve(_ p: String) -> String { p.hasPrefix("/") || base.isEmpty ? p : base + "/" + p }
        for (k, v) in root.mapping! {
            switch k.scalar {
            case "rules":
                guard let p = v.scalar else { throw v.error("\"rules\" must be a directory path") }
                s.rules = resolve(p)
            case "watchlists":
                guard let p = v.scalar else { throw v.error("\"watchlists\" must be a directory path") }
                s.watchlists = resolve(p)
            case "default_region":
                guard let r = v.scalar?.uppercased(), PhoneNormalizer.shared.knowsRegion(r) else {
                    throw v.error("\"default_region\" must be an ISO 3166 region code with a numbering plan")
                }
                s.defaultRegion = r
            case "correlation":
                guard let m = v.mapping else { throw v.error("\"correlation\" must be a mapping") }
                for (ck, cv) in m {
                    switch ck.scalar {
                    case "allowed_lateness":
                        guard let d = cv.scalar.flatMap(parseDuration) else {
                            throw cv.error("\"allowed_lateness\" must be a duration such as 10m or 1h")
                        }
                        s.correlation.allowedLateness = d
                    case "max_groups", "max_entries_per_group":
                        guard let n = cv.scalar.flatMap({ Int($0) }), n > 0 else {
                            throw cv.error("\"\(ck.scalar!)\" must be a positive integer")
                        }
                        if ck.scalar == "max_groups" {
                            s.correlation.maxGroups = n
                        } else {
                            s.correlation.maxEntriesPerGroup = n
                        }
                    default:
                        throw ck.error(
                            "unknown correlation key \"\(ck.scalar ?? "?")\" (allowed_lateness, max_groups, max_entries_per_group)"
                        )
                    }
                }
            case "state", "partners", "principals", "receivers", "route", "inhibit_rules", "rate_limits", "audit",
                "templates", "resolve_timeout":
                continue  // read by `serve`
            default:
                throw k.error("unknown configuration key \"\(k.scalar ?? "?")\"")
            }
        }
        return s
    }
}
