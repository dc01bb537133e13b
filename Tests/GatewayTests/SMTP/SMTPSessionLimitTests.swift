// GatewayTests: the limits on concurrent SMTP sessions (`smtp_sessions`, `smtp_sessions_per_address`) against a
// real listener on 127.0.0.1:0.
import Foundation
import MailCore
import Testing
import Transport

@testable import Gateway

@Suite("SMTP session limits", .serialized)
struct SMTPSessionLimitTests {
    /// Opens a client and returns it with its first reply (greeting or refusal).
    private func open(_ harness: Harness) async throws -> (RawClient, String?) {
        let client = try await RawClient(harness.gateway.boundAddress)
        return (client, try await client.reply(within: 10))
    }

    @Test("one session past smtp_sessions_per_address gets 421 4.7.0 and is closed; a freed slot admits again")
    func perAddressLimit() async throws {
        var limits = Limits.standard
        limits.smtpSessionsPerAddress = 2
        limits.smtpSessions = 50
        let harness = try Harness(limits: limits)
        defer { harness.stop() }
        let (first, firstGreeting) = try await open(harness)
        defer { first.close() }
        let (second, secondGreeting) = try await open(harness)
        defer { second.close() }
        #expect(firstGreeting?.hasPrefix("220 ") == true)
        #expect(secondGreeting?.hasPrefix("220 ") == true)
        let (third, refusal) = try await open(harness)
        defer { third.close() }
        let text = try #require(refusal)
        #expect(text.hasPrefix("421 4.7.0 Too many connections from your address (2 open)"))
        #expect(try await third.reply(within: 5) == nil, "the refused connection must be closed")
        #expect(harness.gateway.activeSessionCount == 2)
        // The session that ends gives its slot back.
        try await first.send("QUIT\r\n")
        #expect(try await first.reply()?.hasPrefix("221") == true)
        try await waitUntil { harness.gateway.activeSessionCount == 1 }
        let (fourth, greeting) = try await open(harness)
        defer { fourth.close() }
        #expect(greeting?.hasPrefix("220 ") == true)
        // The admitted session works as any other.
        try await fourth.send("EHLO client.test\r\n")
        #expect(try await fourth.reply()?.hasPrefix("250") == true)
    }

    @Test("one session past smtp_sessions gets 421 4.7.0 with the total in its sentence")
    func totalLimit() async throws {
        var limits = Limits.standard
        limits.smtpSessions = 1
        limits.smtpSessionsPerAddress = 50
        let harness = try Harness(limits: limits)
        defer { harness.stop() }
        let (first, greeting) = try await open(harness)
        defer { first.close() }
        #expect(greeting?.hasPrefix("220 ") == true)
        let (second, refusal) = try await open(harness)
        defer { second.close() }
        #expect(refusal?.hasPrefix("421 4.7.0 Too many connections (1 open)") == true)
        #expect(try await second.reply(within: 5) == nil)
        first.close()
        try await waitUntil { harness.gateway.activeSessionCount == 0 }
        let (third, again) = try await open(harness)
        defer { third.close() }
        #expect(again?.hasPrefix("220 ") == true)
    }

    @Test("the limiter counts per address and gives slots back")
    func limiterCounts() throws {
        var limits = Limits.standard
        limits.smtpSessions = 3
        limits.smtpSessionsPerAddress = 2
        let limiter = SMTPSessionLimiter(limits: limits)
        let a = try #require(IPAddress(parsing: "192.0.2.1"))
        let b = try #require(IPAddress(parsing: "192.0.2.2"))
        #expect(limiter.admit(a) == nil)
        #expect(limiter.admit(a) == nil)
        #expect(limiter.admit(a) == .perAddress(2))
        #expect(limiter.admit(b) == nil)
        #expect(limiter.admit(b) == .total(3))
        #expect(limiter.openSessions == 3)
        limiter.release(a)
        #expect(limiter.admit(b) == nil)
        #expect(limiter.admit(a) == .total(3))
    }

    private func waitUntil(_ condition: @escaping () -> Bool) async throws {
        for _ in 0..<100 where !condition() { try await Task.sleep(nanoseconds: 50_000_000) }
        #expect(condition())
    }
}
