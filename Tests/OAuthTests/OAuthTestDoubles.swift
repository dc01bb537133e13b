// OAuthTests: fakes for the token endpoint, the token store, the clock and sleep.
import Foundation
import MailCore
import Synchronization

@testable import OAuth

/// A fake access/refresh token made of strings that must never appear in an error or a log.
enum FakeSecrets {
    static let access1 = "FAKE-ACCESS-eyJ0eXAiOiJKV1QiLCJub25jZSI6ONE"
    static let access2 = "FAKE-ACCESS-eyJ0eXAiOiJKV1QiLCJub25jZSI6TWO"
    static let access3 = "FAKE-ACCESS-eyJ0eXAiOiJKV1QiLCJub25jZSI6THREE"
    static let refresh1 = "FAKE-REFRESH-0.AQsAmNbmTcXyz-ONE"
    static let refresh2 = "FAKE-REFRESH-0.AQsAmNbmTcXyz-TWO"
    static let secret = "FAKE-CLIENT-SECRET~q8Q~abc"
    static let code = "FAKE-CODE-M.C507_BAY.2.U.abcdef"
    static let deviceCode = "FAKE-DEVICE-CODE-DAQABAAEAAAD"
    static let all = [access1, access2, access3, refresh1, refresh2, secret, code, deviceCode]
}

/// One recorded POST.
struct RecordedRequest: Sendable {
    var url: String
    var form: [(String, String)]

    func value(_ key: String) -> String? { form.first { $0.0 == key }?.1 }
}

/// A token endpoint that answers from a script and records every request.
actor FakeTokenEndpoint: TokenEndpoint {
    enum Reply: Sendable {
        case response(HTTPResponse)
        case failure(OAuthError)
    }

    private var script: [Reply]
    private var fallback: Reply?
    private(set) var requests: [RecordedRequest] = []
    private let delay: Double
    /// Called when a request arrives, before it is answered (lets a test look at the store at that moment).
    private let onRequest: (@Sendable (RecordedRequest) async -> Void)?

    init(
        _ script: [Reply], repeating fallback: Reply? = nil, delay: Double = 0,
        onRequest: (@Sendable (RecordedRequest) async -> Void)? = nil
    ) {
        self.script = script
        self.fallback = fallback
        self.delay = delay
        self.onRequest = onRequest
    }

    func post(url: String, form: [(String, String)]) async throws(OAuthError) -> HTTPResponse {
        let request = RecordedRequest(url: url, form: form)
        requests.append(request)
        await onRequest?(request)
        if delay > 0 { try? await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000)) }
        let reply: Reply
        if !script.isEmpty {
            reply = script.removeFirst()
        } else if let fallback {
            reply = fallback
        } else {
            throw .network(reason: "fake endpoint has no scripted reply left")
        }
        switch reply {
        case .response(let response): return response
        case .failure(let error): throw error
        }
    }

    var requestCount: Int { requests.count }

    // MARK: - Canned replies

    static func json(_ status: Int, _ text: String) -> Reply {
        .response(HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: Array(text.utf8)))
    }

    static func token(access: String, refresh: String?, expiresIn: String = "3599") -> Reply {
        let refreshPart = refresh.map { #","refresh_token":"\#($0)""# } ?? ""
        return json(
            200,
            #"{"token_type":"Bearer","scope":"https://outlook.office.com/IMAP.AccessAsUser.All","expires_in":\#(expiresIn),"ext_expires_in":3599,"access_token":"\#(access)"\#(refreshPart)}"#
        )
    }

    static func oauthError(_ status: Int, _ error: String, codes: [Int] = [], description: String = "") -> Reply {
        let text = description.isEmpty ? "AADSTS\(codes.first ?? 0): something. Trace ID: 1234" : description
        return json(
            status,
            #"{"error":"\#(error)","error_description":"\#(text)","error_codes":[\#(codes.map(String.init).joined(separator: ","))],"timestamp":"2026-01-01 00:00:00Z","trace_id":"t","correlation_id":"c"}"#
        )
    }
}

/// A token store in memory that records the order of everything done to it.
actor InMemoryTokenStore: TokenStore {
    enum Event: Equatable, Sendable {
        case load(String)
        case save(String, refreshToken: String?)
        case mark(String, reason: String)
    }

    private(set) var tokens: [String: StoredToken]
    private(set) var events: [Event] = []
    private let saveDelay: Double
    var failSaves = false

    init(_ tokens: [String: StoredToken] = [:], saveDelay: Double = 0) {
        self.tokens = tokens
        self.saveDelay = saveDelay
    }

    func load(account: String) async throws -> StoredToken? {
        events.append(.load(account))
        return tokens[account]
    }

    func save(account: String, token: StoredToken) async throws {
        if saveDelay > 0 { try? await Task.sleep(nanoseconds: UInt64(saveDelay * 1_000_000_000)) }
        if failSaves { throw StoreFailure() }
        tokens[account] = token
        events.append(.save(account, refreshToken: token.refreshToken?.revealed))
    }

    func markNeedsReconnect(account: String, reason: String) async throws {
        tokens[account]?.needsReconnect = true
        events.append(.mark(account, reason: reason))
    }

    func setFailSaves(_ value: Bool) { failSaves = value }
    func put(_ account: String, _ token: StoredToken) { tokens[account] = token }

    struct StoreFailure: MailGateError {
        var description: String { "The test store refused to save." }
    }
}

/// A clock tests move by hand.
final class TestClock: Sendable {
    private let current: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { current = Mutex(start) }

    var now: Date { current.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
    var function: @Sendable () -> Date { { self.now } }
}

/// Records requested sleeps; optionally advances a clock instead of waiting.
final class SleepRecorder: Sendable {
    private let recorded = Mutex<[Double]>([])
    private let clock: TestClock?

    init(advancing clock: TestClock? = nil) { self.clock = clock }

    var sleeps: [Double] { recorded.withLock { $0 } }
    var function: @Sendable (Double) async -> Void {
        { seconds in
            self.recorded.withLock { $0.append(seconds) }
            self.clock?.advance(seconds)
        }
    }
}

extension StoredToken {
    /// A delegated token set expiring `seconds` after `now`.
    static func fake(
        access: String = FakeSecrets.access1, refresh: String? = FakeSecrets.refresh1, expiresIn seconds: TimeInterval,
        from now: Date, issuedAt: Date? = nil
    ) -> StoredToken {
        StoredToken(
            accessToken: Redacted(access), refreshToken: refresh.map(Redacted.init),
            expiresAt: now.addingTimeInterval(seconds), scope: nil, needsReconnect: false, issuedAt: issuedAt)
    }
}

extension OAuthProviderSettings {
    static let testDelegated = OAuthProviderSettings.microsoft365(
        clientID: "00000000-1111-2222-3333-444444444444", tenant: "contoso.onmicrosoft.com")
    static let testConfidential = OAuthProviderSettings.microsoft365(
        clientID: "00000000-1111-2222-3333-444444444444", tenant: "contoso.onmicrosoft.com",
        clientSecret: Redacted(FakeSecrets.secret), flow: .clientCredentials)
}
