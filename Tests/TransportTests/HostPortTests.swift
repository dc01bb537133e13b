import Testing
import Transport

@Suite struct HostPortTests {
    @Test func parsesTheConfigurationForms() {
        #expect(HostPort(parsing: "127.0.0.1:1587") == HostPort(host: "127.0.0.1", port: 1587))
        #expect(HostPort(parsing: "[::1]:25") == HostPort(host: "::1", port: 25))
        #expect(HostPort(parsing: "outlook.office365.com:993")?.host == "outlook.office365.com")
        #expect(HostPort(parsing: "[::1]:25")?.description == "[::1]:25")
        #expect(HostPort(parsing: "0.0.0.0:0")?.port == 0)
    }

    @Test(arguments: [
        "", ":25", "host:", "host", "::1:25", "[::1]25", "[::1]:", "[host]:25", "host:65536", "host:-1",
        "host:2 5", "ho st:25", "host:0x19", "[::1:25", "host:123456", "a:b:c",
    ])
    func refusesMalformedAddresses(_ text: String) {
        #expect(HostPort(parsing: text) == nil)
    }

    @Test func ipAddressesParseAndPrint() {
        #expect(IPAddress(parsing: "192.168.1.20")?.bytes == [192, 168, 1, 20])
        #expect(IPAddress(parsing: "::1")?.description == "::1")
        #expect(IPAddress(parsing: "2001:db8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPAddress(parsing: "::ffff:10.0.0.1")?.unmapped == IPAddress(parsing: "10.0.0.1"))
        for bad in [
            "256.1.1.1", "1.2.3", "01.2.3.4", "1:2:3:4:5:6:7:8:9", ":::", "1::2::3", "g::1", "1.2.3.4.5", "host",
        ] {
            #expect(IPAddress(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func cidrMembership() {
        let network = IPAddress(parsing: "192.168.0.0")!
        #expect(IPAddress(parsing: "192.168.77.1")!.isIn(network: network, prefixLength: 16))
        #expect(!IPAddress(parsing: "192.169.0.1")!.isIn(network: network, prefixLength: 16))
        #expect(IPAddress(parsing: "::ffff:192.168.3.4")!.isIn(network: network, prefixLength: 20))
        #expect(!IPAddress(parsing: "fe80::1")!.isIn(network: network, prefixLength: 0))
        #expect(IPAddress(parsing: "10.1.2.3")!.isIn(network: IPAddress(parsing: "10.1.2.2")!, prefixLength: 31))
        #expect(!IPAddress(parsing: "10.1.2.3")!.isIn(network: IPAddress(parsing: "10.1.2.2")!, prefixLength: 32))
    }
}
