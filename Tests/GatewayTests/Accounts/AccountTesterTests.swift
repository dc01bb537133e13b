// GatewayTests: `account test` honours allow_insecure_upstream as the gateway does (no plaintext by the back door).
import Synchronization
import Testing
import Transport

@testable import Gateway

@Suite("Account tester: plaintext upstream guard", .serialized)
struct AccountTesterGuardTests {
    private func run(_ plan: AccountTester.Plan) async -> [AccountTester.Step] {
        let steps = Mutex<[AccountTester.Step]>([])
        _ = await AccountTester(plan: plan, credentials: FakeCredentials()).run(account: "alice@contoso.com") { step in
            steps.withLock { $0.append(step) }
        }
        return steps.withLock { $0 }
    }

    @Test("smtp_security = none without allow_insecure_upstream is refused before connecting")
    func smtpPlaintextRefused() async throws {
        let upstream = try FakeSMTPUpstream()
        defer { upstream.stop() }
        let endpoint = UpstreamEndpoint(address: upstream.address, security: .none, caFile: nil)
        let steps = await run(AccountTester.Plan(smtp: endpoint, incoming: nil, ehloHostname: "t.test", timeout: 5))
        let smtp = try #require(steps.last)
        #expect(!smtp.passed)
        #expect(smtp.detail.contains("allow_insecure_upstream"), "\(smtp.detail)")
        try await Task.sleep(nanoseconds: 100_000_000)
        #expect(upstream.snapshot.connections == 0)
    }

    @Test("with allow_insecure_upstream the plaintext test does connect")
    func smtpPlaintextAllowed() async throws {
        let upstream = try FakeSMTPUpstream()
        defer { upstream.stop() }
        let endpoint = UpstreamEndpoint(address: upstream.address, security: .none, caFile: nil, allowInsecure: true)
        _ = await run(AccountTester.Plan(smtp: endpoint, incoming: nil, ehloHostname: "t.test", timeout: 5))
        #expect(upstream.snapshot.connections == 1)
    }

    @Test("imap_security / pop3_security = none without allow_insecure_upstream are refused too")
    func incomingPlaintextRefused() async throws {
        let address = HostPort(host: "127.0.0.1", port: 9)!
        let endpoint = UpstreamEndpoint(address: address, security: .none, caFile: nil)
        for incoming in [AccountTester.Plan.Incoming.imap(endpoint), .pop3(endpoint)] {
            let steps = await run(AccountTester.Plan(smtp: nil, incoming: incoming, ehloHostname: "t.test", timeout: 5))
            let step = try #require(steps.last)
            #expect(!step.passed)
            #expect(step.detail.contains("allow_insecure_upstream"), "\(step.detail)")
        }
    }
}
