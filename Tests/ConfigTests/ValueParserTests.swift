// ConfigTests: the small grammars: durations, host:port, CIDR ranges.
import Config
import Testing

@Suite("Durations")
struct DurationParserTests {
    @Test(
        "valid durations",
        arguments: [
            ("90", 90), ("30s", 30), ("15m", 900), ("2h", 7_200), ("1d", 86_400),
            ("1h30m", 5_400), ("0", 0), ("0s", 0), ("366d", 366 * 86_400),
        ])
    func valid(text: String, seconds: Int) {
        #expect(DurationParser.seconds(text) == seconds)
    }

    @Test(
        "malformed and hostile durations",
        arguments: [
            "", "m", "15 m", " 15m", "-1m", "1.5h", "1w", "15M",
            "1h30", "367d", "9999999999999999999999", String(repeating: "1s", count: 40), "１m", "5m\n",
        ])
    func invalid(text: String) {
        #expect(DurationParser.seconds(text) == nil)
    }

    @Test("format writes what parse reads")
    func roundTrip() {
        for seconds in [0, 1, 59, 60, 61, 900, 3_600, 5_400, 86_400, 90_061] {
            #expect(DurationParser.seconds(DurationParser.format(seconds)) == seconds)
        }
        #expect(DurationParser.format(900) == "15m")
    }
}

@Suite("Host and port")
struct HostPortSpecTests {
    @Test(
        "valid endpoints",
        arguments: [
            ("127.0.0.1:1587", "127.0.0.1", 1_587), ("[::1]:1143", "::1", 1_143),
            ("0.0.0.0:25", "0.0.0.0", 25), ("smtp.office365.com:587", "smtp.office365.com", 587),
            ("localhost:65535", "localhost", 65_535), ("[fe80::1]:1", "fe80::1", 1),
        ])
    func valid(text: String, host: String, port: Int) throws {
        let spec = try #require(HostPortSpec(parsing: text))
        #expect(spec.host == host && spec.port == port)
        #expect(spec.description == text)
    }

    @Test(
        "malformed endpoints",
        arguments: [
            "", ":", "host", "host:", ":25", "host:0", "host:65536", "host:+25",
            "host:25 ", "::1:25", "[::1]25", "[::1:25", "[example.com]:25", "ho st:25", "-bad.com:25", "a..b:25",
            "host:0025x", String(repeating: "a", count: 300) + ":25", "[1.2.3.4]:25", "host:99999999999999999999",
        ])
    func invalid(text: String) {
        #expect(HostPortSpec(parsing: text) == nil)
    }

    @Test("loopback detection")
    func loopback() {
        #expect(HostPortSpec(parsing: "127.0.0.1:1")!.isLoopback)
        #expect(HostPortSpec(parsing: "[::1]:1")!.isLoopback)
        #expect(HostPortSpec(parsing: "[::ffff:127.0.0.1]:1")!.isLoopback)
        #expect(HostPortSpec(parsing: "LocalHost:1")!.isLoopback)
        #expect(!HostPortSpec(parsing: "0.0.0.0:1")!.isLoopback)
        #expect(!HostPortSpec(parsing: "[::]:1")!.isLoopback)
        #expect(!HostPortSpec(parsing: "128.0.0.1:1")!.isLoopback)
        #expect(!HostPortSpec(parsing: "localhost.evil.com:1")!.isLoopback)
    }
}

@Suite("CIDR ranges")
struct CIDRTests {
    @Test("IPv4 ranges")
    func ipv4() throws {
        let range = try #require(CIDR(parsing: "192.168.10.0/24"))
        #expect(range.contains(ipAddress: "192.168.10.0"))
        #expect(range.contains(ipAddress: "192.168.10.255"))
        #expect(!range.contains(ipAddress: "192.168.11.1"))
        #expect(range.contains(ipAddress: "::ffff:192.168.10.9"))
        #expect(!range.contains(ipAddress: "fe80::1"))
        #expect(!range.contains(ipAddress: "not an address"))
        #expect(CIDR(parsing: "192.168.10.77/24") == range)
        #expect(range.description == "192.168.10.0/24")
        let odd = try #require(CIDR(parsing: "10.0.0.0/9"))
        #expect(odd.contains(ipAddress: "10.127.255.255"))
        #expect(!odd.contains(ipAddress: "10.128.0.0"))
    }

    @Test("IPv6 ranges and single hosts")
    func ipv6() throws {
        let loop = try #require(CIDR(parsing: "::1/128"))
        #expect(loop.contains(ipAddress: "::1"))
        #expect(!loop.contains(ipAddress: "::2"))
        let ula = try #require(CIDR(parsing: "fd00::/8"))
        #expect(ula.contains(ipAddress: "fd12:3456::1%eth0"))
        #expect(!ula.contains(ipAddress: "fe80::1"))
        let host = try #require(CIDR(parsing: "10.0.0.5"))
        #expect(host.prefixLength == 32)
        #expect(host.contains(ipAddress: "10.0.0.5") && !host.contains(ipAddress: "10.0.0.6"))
        let all = try #require(CIDR(parsing: "0.0.0.0/0"))
        #expect(all.contains(ipAddress: "8.8.8.8"))
    }

    @Test(
        "malformed ranges",
        arguments: [
            "", "/24", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0/24", "10.0.0.0/-1",
            "10.0.0.0/24/1", "example.com/24", "10.0.0.0/ 24", "10.0.0.0/0024", "256.0.0.0/8",
            String(repeating: "1", count: 100),
        ])
    func invalid(text: String) {
        #expect(CIDR(parsing: text) == nil)
    }
}
