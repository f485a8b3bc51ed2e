import TriplineJSON
import TriplineState

/// Group timers as a binary min-heap of (due time, group id). A group whose time changes is pushed again; the
/// entries it leaves behind are skipped when popped (the caller compares with the group's current time), so a tick
/// touches only the groups that are due instead of every group.
struct TimerHeap {
    private var items: [(Double, String)] = []

    var count: Int { items.count }

    mutating func push(_ t: Double, _ id: String) {
        items.append((t, id))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent].0 <= items[i].0 { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    func peek() -> (Double, String)? { items.first }

    mutating func pop() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < items.count && items[l].0 < items[m].0 { m = l }
            if r < items.count && items[r].0 < items[m].0 { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
    }
}

/// Firing alerts indexed for inhibition (Alertmanager's inhibitor cache): per inhibit rule, the source alerts it
/// matches, by the values of the rule's `equal` labels. Checking whether an alert is inhibited is then one lookup
/// per rule whose target matchers it meets, instead of a scan of every firing alert.
struct InhibitionIndex {
    let rules: [InhibitRule]
    /// Per rule: `equal` label values → source alerts (key → id).
    private var sources: [[String: [String: Int64]]]
    /// Where each alert is indexed, to take it out when it changes.
    private var placed: [String: [(rule: Int, bucket: String)]] = [:]

    init(_ rules: [InhibitRule]) {
        self.rules = rules
        sources = Array(repeating: [:], count: rules.count)
    }

    private static func bucket(_ r: InhibitRule, _ labels: JSONObject) -> String {
        JSONWriter.string(.array(r.equal.map { labels[$0] ?? .null }))
    }

    /// The alert's current state: a firing alert that meets a rule's source matchers can inhibit; any other is
    /// taken out.
    mutating func update(_ a: AlertRecord) {
        if rules.isEmpty { return }
        if let old = placed.removeValue(forKey: a.key) {
            for (rule, bucket) in old {
                sources[rule][bucket]?[a.key] = nil
                if sources[rule][bucket]?.isEmpty == true { sources[rule][bucket] = nil }
            }
        }
        guard a.state == .firing else { return }
        var here: [(rule: Int, bucket: String)] = []
        for (i, r) in rules.enumerated() where r.sourceMatchers.matches(a.labels) {
            let b = Self.bucket(r, a.labels)
            sources[i][b, default: [:]][a.key] = a.id
            here.append((i, b))
        }
        if !here.isEmpty { placed[a.key] = here }
    }

    /// The id of a firing alert that inhibits `a`, if any.
    func source(inhibiting a: AlertRecord) -> Int64? {
        for (i, r) in rules.enumerated() where r.targetMatchers.matches(a.labels) {
            guard let m = sources[i][Self.bucket(r, a.labels)] else { continue }
            for (k, id) in m where k != a.key { return id }
        }
        return nil
    }
}
