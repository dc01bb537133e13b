// Gateway/Journal: asks an RFC 3161 time-stamping authority to time-stamp a checkpoint's hash, over HTTPS.
public import Crypto
import OAuth

/// One TSA: builds the `TimeStampReq` (SHA-256 imprint of the checkpoint's entry hash, a fresh nonce, certReq),
/// POSTs it as `application/timestamp-query` with the project's HTTPS client (certificates verified against the
/// system store plus `tsa_ca_file`), and accepts the `TimeStampResp` only when it verifies against `tsa_ca_file`
/// with the same nonce.
///
/// The imprint is the entry hash itself (already a SHA-256), so that an auditor checks a token with
/// `openssl ts -verify -digest HASH -in SEQ.tsr -CAfile tsa-ca.pem` and nothing else.
public struct TimeStampClient: Sendable {
    public let url: String
    public let caFile: String
    private let http: HTTPSTokenEndpoint

    public init(url: String, caFile: String, timeout: Double = 30) throws {
        self.url = url
        self.caFile = caFile
        http = try HTTPSTokenEndpoint(caFile: caFile, timeout: timeout, limits: HTTPSTokenEndpoint.timeStampLimits)
    }

    /// The verified token (DER `TimeStampResp`) for `entryHash` (64 hex digits) and what it says.
    public func stamp(entryHash: String) async throws -> (der: [UInt8], token: TimeStampToken) {
        guard let digest = TimeStamp.digest(hex: entryHash) else {
            throw TimeStampError.imprintMismatch("\"\(entryHash.prefix(80))\" is not a SHA-256 in hex")
        }
        let nonce = SecureRandom.bytes(8)
        let request = try TimeStamp.request(sha256: digest, nonce: nonce)
        let response = try await http.post(
            url: url, contentType: "application/timestamp-query", accept: "application/timestamp-reply",
            body: request)
        guard response.status == 200 else {
            throw TimeStampError.refused(status: response.status, text: "HTTP status \(response.status) from \(url)")
        }
        let token = try TimeStamp.verify(response: response.body, sha256: digest, caFile: caFile, nonce: nonce)
        return (response.body, token)
    }
}
