// swift-tools-version:6.1
// MailGate: a mail gateway that lets password-only SMTP/IMAP/POP3 clients use Microsoft 365 (XOAUTH2).
import Foundation
import PackageDescription

/// Strictness switched on for every target (STYLE.md §3).
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "MailGate",
    products: [
        .executable(name: "mailgate", targets: ["mailgate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "MailCore", swiftSettings: strict),
        .target(name: "Crypto", dependencies: ["MailCore", "COpenSSL"], swiftSettings: strict),
        .target(name: "TLS", dependencies: ["MailCore", "Crypto", "COpenSSL"], swiftSettings: strict),
        .target(
            name: "Transport",
            dependencies: ["MailCore", "TLS", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(name: "SASL", dependencies: ["MailCore"], swiftSettings: strict),
        .target(name: "SMTP", dependencies: ["MailCore"], swiftSettings: strict),
        .target(name: "IMAP", dependencies: ["MailCore"], swiftSettings: strict),
        .target(name: "POP3", dependencies: ["MailCore"], swiftSettings: strict),
        .target(
            name: "OAuth",
            dependencies: ["MailCore", "Crypto", "TLS", "Transport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "Store",
            dependencies: ["MailCore", "Crypto", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict),
        .target(name: "Policy", dependencies: ["MailCore", "IMAP"], swiftSettings: strict),
        .target(name: "Config", dependencies: ["MailCore", "TOMLKit"], swiftSettings: strict),
        .target(
            name: "Gateway",
            dependencies: [
                "MailCore", "Crypto", "TLS", "Transport", "SASL", "SMTP", "IMAP", "POP3", "OAuth", "Store",
                "Policy", "Config", .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict),
        .target(
            name: "LogHandling", dependencies: [.product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .executableTarget(
            name: "mailgate",
            dependencies: [
                "Gateway", "Config", "Store", "OAuth", "MailCore", "Crypto", "LogHandling",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .target(
            name: "MailGateTesting",
            dependencies: ["MailCore", "Crypto", "TLS", "Transport"],
            swiftSettings: strict),

        .testTarget(name: "MailCoreTests", dependencies: ["MailCore"], swiftSettings: strict),
        .testTarget(name: "CryptoTests", dependencies: ["Crypto", "MailGateTesting"], swiftSettings: strict),
        .testTarget(name: "TLSTests", dependencies: ["TLS", "MailGateTesting"], swiftSettings: strict),
        .testTarget(name: "TransportTests", dependencies: ["Transport", "TLS", "MailGateTesting"], swiftSettings: strict),
        .testTarget(name: "SASLTests", dependencies: ["SASL"], swiftSettings: strict),
        .testTarget(name: "SMTPTests", dependencies: ["SMTP", "SASL"], swiftSettings: strict),
        .testTarget(name: "IMAPTests", dependencies: ["IMAP"], swiftSettings: strict),
        .testTarget(name: "POP3Tests", dependencies: ["POP3"], swiftSettings: strict),
        .testTarget(name: "OAuthTests", dependencies: ["OAuth", "MailGateTesting"], swiftSettings: strict),
        .testTarget(
            name: "StoreTests", dependencies: ["Store", "Crypto", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict),
        .testTarget(name: "ConfigTests", dependencies: ["Config"], swiftSettings: strict),
        .testTarget(name: "PolicyTests", dependencies: ["Policy"], swiftSettings: strict),
        .testTarget(
            name: "GatewayTests", dependencies: ["Gateway", "MailGateTesting"], swiftSettings: strict),
        .testTarget(name: "CLITests", dependencies: ["MailCore", "MailGateTesting"], swiftSettings: strict),
        .testTarget(name: "LogHandlingTests", dependencies: ["LogHandling"], swiftSettings: strict),
        .target(
            name: "FuzzTargets", dependencies: ["MailCore", "IMAP", "SMTP", "POP3", "OAuth", "Config"],
            swiftSettings: strict),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets"], swiftSettings: strict),
    ]
)

// The libFuzzer binary exists only for `scripts/fuzz` (MAILGATE_FUZZ=1): its entry point hands over to libFuzzer's
// driver, so it links only with `-sanitize=fuzzer`, which the normal build does not use.
if ProcessInfo.processInfo.environment["MAILGATE_FUZZ"] == "1" {
    package.targets.append(
        .executableTarget(name: "MailGateFuzz", dependencies: ["FuzzTargets"], path: "Fuzz/MailGateFuzz"))
    package.products.append(.executable(name: "mailgate-fuzz", targets: ["MailGateFuzz"]))
}
