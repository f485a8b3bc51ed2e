import Crypto
import Foundation
import TriplineAudit
import TriplineMatch
import TriplineRules
import TriplineSelectors
import TriplineWatchlists

/// The small fixed world the targets run in: one list with a selector of every type, rules that use regexes,
/// `contains`, a field reference, an `expand` of the list and a correlation, and a signing key. Invented data.
public enum FuzzFixtures {
    /// 2026-06-01T00:00:00Z: before every expiry and review date below.
    public static let now = 1_780_272_000.0

    static let watchlistYAML = """
        watchlist: fuzz-contacts
        owner: fuzz-a
        description: Invented selectors of every type
        handling:
          tlp: amber
        review_by: 2031-01-01
        default_priority: high
        entries:
          - ref: FZ-1
            label: Every direct type
            selectors:
              - {type: phone, value: "+32 470 12 34 56"}
              - {type: phone, value: "0486 55 01 23", country: BE}
              - {type: email, value: "Abou.Omar.B@Example.ORG"}
              - {type: imei, value: "35-209900-176148-1"}
              - {type: imsi, value: "206012345678901"}
              - {type: ip, value: "2001:DB8:0:0:0:0:0:7"}
              - {type: username, value: "telegram:@Abu_Yahya_BE"}
              - {type: document, value: "FR:12AB34567"}
              - {type: wallet, value: "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"}
          - ref: FZ-2
            label: Names and aliases
            priority: critical
            expires: 2030-01-01
            selectors:
              - {type: name, value: "Abdelhamid Abaaoud", aliases: ["Abou Omar al-Baljiki"]}
              - {type: name, value: "Mohammed Al-Shami"}
              - {type: name, value: "عبد الله الحسين"}
              - {type: name, value: "Иван Петров"}
          - ref: FZ-3
            label: Prefixes and networks
            priority: medium
            selectors:
              - {type: phone_prefix, value: "+32 2"}
              - {type: phone_prefix, value: "+964 60"}
              - {type: ip_cidr, value: "192.0.2.0/24"}
              - {type: ip_cidr, value: "2001:db8:bad::/48"}

        """

    static let rulesYAML = """
        title: Kunya handle
        id: 2c1d7c0e-0000-4000-8000-000000000001
        name: kunya_handle
        logsource: {product: tripline, category: selector}
        detection:
          selection:
            type: username
            value|re: '^telegram:abo?u[_.]?[a-z]+[_.](be|fr|nl)$'
          condition: selection
        level: medium
        ---
        title: Contact on the list
        id: 2c1d7c0e-0000-4000-8000-000000000002
        name: listed_value
        logsource: {product: tripline, category: selector}
        detection:
          listed:
            value|expand: '%fuzz-a/fuzz-contacts%'
          word:
            value|contains|all: ['abu', 'omar']
          home:
            country|fieldref: source.country
          condition: listed or word or (1 of list* and not home)
        level: high
        ---
        title: Many numbers of one device
        id: 2c1d7c0e-0000-4000-8000-000000000003
        correlation:
          type: value_count
          rules: [listed_value, kunya_handle]
          group-by: [source.item]
          timespan: 1h
          condition: {gte: 2, field: value}
        level: critical

        """

    static let watchlist: Watchlist = {
        let o = WatchlistLoader(normalizer: SelectorNormalizer()).outcome(
            bytes: Array(watchlistYAML.utf8), file: "fuzz-contacts.yaml", owner: "fuzz-a", now: now)
        guard let list = o.list else { fatalError("fixture watchlist refused: \(o.errors)") }
        return list
    }()

    static let ruleSet: RuleSet = {
        let r = RuleLoader(watchlists: [watchlist], now: now).load(bytes: Array(rulesYAML.utf8), file: "fuzz.yml")
        guard r.errors.isEmpty else { fatalError("fixture rules refused: \(r.errors)") }
        return r.ruleSet
    }()

    static let matcher = Matcher(index: WatchlistIndex(lists: [watchlist]), now: now)

    /// A record step with fresh correlation state over the fixed list and rules.
    public static func step() -> RecordStep {
        RecordStep(normalizer: SelectorNormalizer(), matcher: matcher, engine: RuleEngine(ruleSet))
    }

    /// The fuzz log's signing key, from a fixed seed (what the seed corpus's notes are signed with).
    public static let signer: NoteSigner = {
        let seed = (0..<32).map { UInt8(($0 * 37 + 11) & 0xFF) }
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed),
            let s = try? NoteSigner(name: "fuzz.tripline.example/log", key: key)
        else { fatalError("fixture key") }
        return s
    }()
}
