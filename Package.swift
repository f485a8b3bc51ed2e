// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Tripline",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tripline", targets: ["tripline"]),
        // The fuzz targets, for the package under Fuzz/ (parser modules only: no NIO).
        .library(name: "TriplineFuzzing", targets: ["TriplineFuzzing"]),
        // The HTTP API's request handling as a fuzz target (the whole stack: `make fuzz`, not CI's smoke run).
        .library(name: "TriplineFuzzingHTTP", targets: ["TriplineFuzzingHTTP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // System libraries named by the design card, linked from the distribution's packages.
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CPCRE2", pkgConfig: "libpcre2-8", providers: [.apt(["libpcre2-dev"])]),
        // Header only: a software prefetch (the watchlist index's batched probes).
        .systemLibrary(name: "CPrefetch"),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // Foundations shared by every stage.
        .target(name: "TriplineYAML", dependencies: ["CYAML"]),
        .target(name: "TriplineJSON"),
        .target(name: "TriplineRegex", dependencies: ["CPCRE2"]),

        // Pipeline stages: ingest -> normalise/enrich -> match.
        .target(name: "TriplineIngest", dependencies: ["TriplineJSON"]),
        .target(
            name: "TriplineSelectors",
            dependencies: ["TriplineJSON", "TriplineRegex", .product(name: "Crypto", package: "swift-crypto")],
            resources: [
                .copy("Resources/phonemeta.tsv"), .copy("Resources/phonegeo.tsv"), .copy("Resources/namevariants.tsv"),
            ]
        ),
        .target(
            name: "TriplineWatchlists",
            dependencies: [
                "TriplineYAML", "TriplineSelectors", "TriplineJSON", "CPrefetch",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(name: "TriplineMatch", dependencies: ["TriplineSelectors", "TriplineWatchlists", "TriplineJSON"]),
        .target(
            name: "TriplineRules",
            dependencies: [
                "TriplineMatch", "TriplineSelectors", "TriplineWatchlists", "TriplineRegex", "TriplineYAML",
                "TriplineJSON", .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        // State: the store protocol (with an in-memory store), and the embedded SQLite store.
        .target(name: "TriplineState", dependencies: ["TriplineJSON", "TriplineAudit"]),
        .target(
            name: "TriplineStateSQLite", dependencies: ["TriplineState", "TriplineJSON", "TriplineAudit", "CSQLite"]),
        // The PostgreSQL store (several nodes on one database): the same protocols, on PostgresNIO.
        .target(
            name: "TriplineStatePostgres",
            dependencies: [
                "TriplineState", "TriplineJSON", "TriplineAudit",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The store a configuration's `state:` names (a SQLite file or a postgres:// URL), opened and migrated.
        .target(
            name: "TriplineStores",
            dependencies: ["TriplineState", "TriplineStateSQLite", "TriplineStatePostgres", "TriplineJSON"]),

        // Alerts: identity, routing, grouping, silences, inhibition, rate limits, need-to-know rendering.
        .target(
            name: "TriplineAlerts",
            dependencies: [
                "TriplineMatch", "TriplineState", "TriplineWatchlists", "TriplineJSON", "TriplineRegex",
                "TriplineSelectors", .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        // The one authorisation policy (SPEC §8's table): commands and API routes ask it.
        .target(name: "TriplinePolicy", dependencies: ["TriplineAlerts", "TriplineState", "TriplineJSON"]),
        // The operator actions (policy, need-to-know, audit) shared by the command line and the HTTP API.
        .target(
            name: "TriplineOperations",
            dependencies: [
                "TriplinePolicy", "TriplineConfig", "TriplineAlerts", "TriplineState", "TriplineAudit", "TriplineSinks",
                "TriplineSelectors", "TriplineWatchlists", "TriplineJSON", "TriplineYAML",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(
            name: "TriplineConfig",
            dependencies: [
                "TriplineAlerts", "TriplineRules", "TriplineSelectors", "TriplineSinks", "TriplineYAML", "TriplineJSON",
            ]
        ),
        // The SMTP reply decoder: bytes to replies, no I/O (the mail client's and the fuzzer's).
        .target(name: "TriplineMailWire"),
        // Sinks: one protocol; the log-file receiver, webhooks (AsyncHTTPClient), mail (our SMTP client on SwiftNIO).
        .target(
            name: "TriplineSinks",
            dependencies: [
                "TriplineAlerts", "TriplineState", "TriplineJSON", "TriplineYAML", "TriplineMailWire",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The service: ingest -> pipeline -> outbox -> sinks as ServiceLifecycle services.
        .target(
            name: "TriplineService",
            dependencies: [
                "TriplineConfig", "TriplineAlerts", "TriplineSinks", "TriplineState", "TriplineStores",
                "TriplineAudit",
                "TriplineIngest", "TriplineHTTP", "TriplineOperations", "TriplineRules", "TriplineMatch",
                "TriplineWatchlists", "TriplineSelectors",
                "TriplineJSON", "TriplineYAML",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),

        // Audit: RFC 6962 Merkle tree, C2SP signed-note checkpoints, proofs.
        .target(
            name: "TriplineAudit", dependencies: ["TriplineJSON", .product(name: "Crypto", package: "swift-crypto")],
            // Verification recomputes every hash; optimised in debug builds too, so the tamper suite stays quick.
            swiftSettings: [.unsafeFlags(["-O"])]
        ),

        // The HTTP API (SPEC §10): Hummingbird routes over the operations, bearer tokens and client certificates
        // (TLS: HummingbirdTLS, NIOSSL; subjects read with swift-certificates), problem+json.
        .target(
            name: "TriplineHTTP",
            dependencies: [
                "TriplineOperations", "TriplinePolicy", "TriplineAlerts", "TriplineState", "TriplineAudit",
                "TriplineSelectors", "TriplineJSON", "TriplineYAML",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            resources: [.copy("Resources/openapi.json")]),

        // Fuzz targets (Fuzz/README.md): every parser of outside input, with its properties.
        .target(
            name: "TriplineFuzzing",
            dependencies: [
                "TriplineJSON", "TriplineIngest", "TriplineYAML", "TriplineSelectors", "TriplineWatchlists",
                "TriplineMatch", "TriplineRules", "TriplineAudit", "TriplineMailWire", "TriplineAlerts",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),

        .target(
            name: "TriplineFuzzingHTTP",
            dependencies: [
                "TriplineFuzzing", "TriplineHTTP", "TriplineOperations", "TriplineConfig", "TriplineStores",
                "TriplineJSON",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Command line: the wiring, and a thin main.
        .target(
            name: "TriplineCLI",
            dependencies: [
                "TriplineIngest", "TriplineSelectors", "TriplineWatchlists", "TriplineMatch", "TriplineRules",
                "TriplineYAML", "TriplineJSON", "TriplineConfig", "TriplineAlerts", "TriplineState",
                "TriplineStores", "TriplineService", "TriplineAudit", "TriplineSinks", "TriplinePolicy",
                "TriplineOperations",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "tripline", dependencies: ["TriplineCLI"]),
        .executableTarget(
            name: "tripline-bench",
            dependencies: [
                "TriplineSelectors", "TriplineWatchlists", "TriplineMatch", "TriplineRules", "TriplineIngest",
                "TriplineJSON", "TriplineAudit", "TriplineState", "TriplineStateSQLite", "TriplineStores",
                "TriplineAlerts",
            ],
            path: "Benchmarks/tripline-bench"
        ),

        .testTarget(name: "TriplineYAMLTests", dependencies: ["TriplineYAML", "TriplineTestSupport"]),
        .testTarget(name: "TriplineJSONTests", dependencies: ["TriplineJSON", "TriplineIngest"]),
        .testTarget(
            name: "TriplineSelectorsTests", dependencies: ["TriplineSelectors", "TriplineJSON", "TriplineTestSupport"]),
        .testTarget(
            name: "TriplineWatchlistsTests",
            dependencies: ["TriplineWatchlists", "TriplineSelectors", "TriplineTestSupport"]),
        .testTarget(
            name: "TriplineRulesTests",
            dependencies: [
                "TriplineRules", "TriplineMatch", "TriplineSelectors", "TriplineWatchlists", "TriplineYAML",
                "TriplineTestSupport",
            ]
        ),
        .testTarget(
            name: "TriplineStateTests",
            dependencies: [
                "TriplineState", "TriplineStateSQLite", "TriplineStatePostgres", "TriplineStores", "TriplineJSON",
                "TriplineAudit", "TriplineTestSupport",
            ]),
        .testTarget(
            name: "TriplineAlertsTests",
            dependencies: [
                "TriplineAlerts", "TriplineSinks", "TriplineState", "TriplineWatchlists", "TriplineMatch",
                "TriplineRules", "TriplineStateSQLite", "TriplineConfig", "TriplineYAML",
                "TriplineSelectors", "TriplineJSON", "TriplineTestSupport",
            ]
        ),
        // Helpers the test suites share (scratch directories, the real SMTP and webhook peers).
        .target(name: "TriplineTestSupport", dependencies: ["TriplineJSON"], path: "Tests/Support"),
        .testTarget(
            name: "TriplineSinksTests",
            dependencies: ["TriplineSinks", "TriplineAlerts", "TriplineState", "TriplineJSON", "TriplineTestSupport"]),
        .testTarget(
            name: "TriplineAuditTests", dependencies: ["TriplineAudit", "TriplineJSON", "TriplineTestSupport"]),
        .testTarget(
            name: "TriplineCLITests",
            dependencies: ["TriplineCLI", "TriplineHTTP", "TriplineJSON", "TriplineStores", "TriplineTestSupport"]),
        // Every fuzz target over its seed corpus and regressions; the JSON and signed-note differentials.
        .testTarget(
            name: "TriplineFuzzingTests",
            dependencies: [
                "TriplineFuzzing", "TriplineFuzzingHTTP", "TriplineMailWire", "TriplineAudit", "TriplineJSON",
                "TriplineTestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // The service as a value, run in-process: the pipeline's transactions, delivery lanes, clocks.
        .testTarget(
            name: "TriplineServiceTests",
            dependencies: [
                "TriplineService", "TriplineOperations", "TriplineAudit", "TriplineConfig", "TriplineAlerts",
                "TriplineState", "TriplineStateSQLite", "TriplineStatePostgres", "TriplineStores",
                "TriplineSinks", "TriplineRules", "TriplineJSON", "TriplineYAML", "TriplineTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
    ]
)

// One set of strict settings for every target, as swift-log does.
for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.unsafeFlags(["-warnings-as-errors"], .when(configuration: .debug)))
    target.swiftSettings = settings
}
package.swiftLanguageModes = [.v6]
