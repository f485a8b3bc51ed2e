import Foundation
import Testing

@testable import TriplineSelectors

/// Differential test against the `phonenumbers` package (libphonenumber's Python port) at the version
/// pinned in scripts/requirements-peers.txt, over numbers it generates in every written format.
@Suite("Phone numbers against phonenumbers")
struct PhoneDifferentialTests {
    struct Case {
        let set: String
        let input: String
        let region: String?
        let e164: String
        let valid: Bool
        let country: String
        let lineType: String
        let area: String?
    }

    static func cases() throws -> [Case]? {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tripline-phone-cases-\(getpid()).tsv")
        defer { try? FileManager.default.removeItem(at: out) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", root.appendingPathComponent("scripts/phone_cases.py").path, "20261123", "90", out.path,
        ]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        let text = try String(contentsOf: out, encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            return Case(
                set: f[0], input: f[1], region: f[2] == "-" ? nil : f[2], e164: f[3], valid: f[4] == "1",
                country: f[5], lineType: f[6], area: f[7] == "-" ? nil : f[7])
        }
    }

    @Test("agrees on E.164, validity, country and line type")
    func differential() throws {
        guard let cases = try Self.cases() else {
            let ci = ProcessInfo.processInfo.environment["CI"] == "true"
            Issue.record("phonenumbers peer is missing: run scripts/setup.sh")
            #expect(!ci)
            return
        }
        let phone = PhoneNormalizer.shared
        var validTotal = 0
        var agreeE164 = 0
        var agreeDetail = 0
        var invalidTotal = 0
        var invalidFlagged = 0
        var regions = Set<String>()
        var samples: [String] = []
        var areaTotal = 0
        var areaAgree = 0
        for c in cases {
            let got = try? phone.normalize(c.input, regions: c.region.map { [$0] } ?? [])
            if c.set == "valid" {
                validTotal += 1
                regions.insert(c.country)
                if let want = c.area {
                    areaTotal += 1
                    if got?.area == want { areaAgree += 1 }
                }
                if got?.e164 == c.e164 {
                    agreeE164 += 1
                    if got?.valid == true && (got?.region ?? "001") == c.country
                        && got?.lineType?.rawValue == c.lineType
                    {
                        agreeDetail += 1
                    } else if samples.count < 40 {
                        samples.append(
                            "detail \(c.input) [\(c.region ?? "-")]: \(String(describing: got)) want \(c.country) \(c.lineType)"
                        )
                    }
                } else if samples.count < 40 {
                    samples.append(
                        "e164 \(c.input) [\(c.region ?? "-")]: got \(got?.e164 ?? "rejected") want \(c.e164)")
                }
            } else {
                invalidTotal += 1
                if got == nil || got?.valid == false {
                    invalidFlagged += 1
                } else if samples.count < 40 {
                    samples.append("invalid \(c.input) [\(c.region ?? "-")]: called valid \(got!.e164)")
                }
            }
        }
        let e164Rate = Double(agreeE164) / Double(validTotal)
        let detailRate = Double(agreeDetail) / Double(validTotal)
        let invalidRate = Double(invalidFlagged) / Double(invalidTotal)
        print(
            "phone differential: \(validTotal) valid cases over \(regions.count) regions, E.164 agreement \(e164Rate), "
                + "validity+country+type \(detailRate); \(invalidTotal) invalid, flagged \(invalidRate)")
        let areaRate = Double(areaAgree) / Double(max(areaTotal, 1))
        print("phone differential: area of fixed lines agrees for \(areaAgree) of \(areaTotal) (\(areaRate))")
        for s in samples { print("  " + s) }
        #expect(areaTotal >= 1_000)
        #expect(areaRate >= 0.99)
        #expect(validTotal >= 20_000)
        #expect(regions.count >= 60)
        #expect(e164Rate >= 0.999)
        #expect(detailRate >= 0.999)
        #expect(invalidRate >= 0.99)
    }
}
