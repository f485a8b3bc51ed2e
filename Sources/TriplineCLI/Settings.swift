import Foundation
import TriplineSelectors
import TriplineYAML

/// What the stream commands need from `tripline.yaml` (the rest of the config belongs to `serve`).
struct Settings {
    var rules = "Rules"
    var watchlists = "Watchlists"
    var defaultRegion: String?
    var configFile: String?

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
            case "state", "partners", "principals", "receivers", "route", "inhibit_rules", "rate_limits", "audit",
                "templates", "resolve_timeout", "correlation":
                continue  // read by `serve`
            default:
                throw k.error("unknown configuration key \"\(k.scalar ?? "?")\"")
            }
        }
        return s
    }
}
