// Crypto: RFC 3161 time-stamps through libcrypto's TS functions: the request, and the check of a response.

internal import COpenSSL
public import MailCore

#if canImport(Glibc)
    internal import Glibc
#endif

/// Why a time-stamp could not be made or does not hold.
public enum TimeStampError: MailGateError, Equatable {
    /// The bytes are not a DER TimeStampResp.
    case notAResponse(String)
    /// The TSA answered with a status other than granted (0) or grantedWithMods (1).
    case refused(status: Int, text: String)
    /// The token is for another hash than the one it should time-stamp.
    case imprintMismatch(String)
    /// The nonce in the token is not the one sent.
    case nonceMismatch
    /// The signature or the signer's certificate chain does not verify against the trust anchors.
    case notVerified(String)
    /// The trust anchors could not be loaded.
    case trustAnchors(path: String, reason: String)
    /// OpenSSL failed building the request.
    case openSSL(String)

    public var description: String {
        switch self {
        case .notAResponse(let why): "The data is not an RFC 3161 time-stamp response (\(why))."
        case .refused(let status, let text):
            "The time-stamping authority refused the request (status \(status)\(text.isEmpty ? "" : ": " + text))."
        case .imprintMismatch(let why): "The time-stamp token is not for this checkpoint's hash (\(why))."
        case .nonceMismatch: "The time-stamp token does not carry the nonce of the request: it answers another one."
        case .notVerified(let why):
            "The time-stamp token does not verify against tsa_ca_file (\(why)): it was altered or comes from "
                + "another authority."
        case .trustAnchors(let path, let reason):
            "The TSA trust anchors \(path) cannot be loaded (\(reason)); set tsa_ca_file to the TSA's CA in PEM."
        case .openSSL(let why): "OpenSSL could not build the time-stamp request (\(why))."
        }
    }
}

/// What a verified time-stamp token says.
public struct TimeStampToken: Sendable, Equatable {
    /// The TSA's time (genTime), seconds since 1970, UTC.
    public var genTime: Int64
    /// The token's serial number in hex, as `openssl ts -reply -text` prints it.
    public var serial: String

    public init(genTime: Int64, serial: String) {
        self.genTime = genTime
        self.serial = serial
    }
}

/// RFC 3161 time-stamp requests and responses (SHA-256 message imprints only).
public enum TimeStamp {
    // ts.h defines these as `(1u << n)`; spelled out here because Swift does not import shifted macros.
    static let verifySignature: Int32 = 1 << 0
    static let verifyVersion: Int32 = 1 << 1
    static let verifyImprint: Int32 = 1 << 3

    /// A DER `TimeStampReq`: version 1, messageImprint (SHA-256, `digest`), `nonce` (big-endian, positive), certReq
    /// TRUE (the TSA puts its certificate in the token, so that the token can be verified with the CA alone).
    public static func request(sha256 digest: [UInt8], nonce: [UInt8]) throws(TimeStampError) -> [UInt8] {
        guard digest.count == SHA256.digestCount else {
            throw .openSSL("a SHA-256 imprint has 32 bytes, not \(digest.count)")
        }
        guard !nonce.isEmpty, nonce.count <= 32 else { throw .openSSL("the nonce must have 1 to 32 bytes") }
        guard let request = TS_REQ_new() else { throw .openSSL(drainOpenSSLErrors(fallback: "TS_REQ_new")) }
        defer { TS_REQ_free(request) }
        guard let imprint = TS_MSG_IMPRINT_new() else { throw .openSSL(drainOpenSSLErrors(fallback: "imprint")) }
        defer { TS_MSG_IMPRINT_free(imprint) }
        guard let algorithm = X509_ALGOR_new() else { throw .openSSL(drainOpenSSLErrors(fallback: "algorithm")) }
        defer { X509_ALGOR_free(algorithm) }
        var bytes = digest
        let nonceNumber = nonce.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        defer { BN_free(nonceNumber) }
        let nonceInteger = BN_to_ASN1_INTEGER(nonceNumber, nil)
        defer { ASN1_INTEGER_free(nonceInteger) }
        // X509_ALGOR_set0 takes the object; the TS setters copy what they are given.
        guard TS_REQ_set_version(request, 1) == 1,
            X509_ALGOR_set0(algorithm, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, nil) == 1,
            TS_MSG_IMPRINT_set_algo(imprint, algorithm) == 1,
            bytes.withUnsafeMutableBufferPointer({ TS_MSG_IMPRINT_set_msg(imprint, $0.baseAddress, Int32($0.count)) })
                == 1,
            TS_REQ_set_msg_imprint(request, imprint) == 1, nonceInteger != nil,
            TS_REQ_set_nonce(request, nonceInteger) == 1, TS_REQ_set_cert_req(request, 1) == 1
        else { throw .openSSL(drainOpenSSLErrors(fallback: "setting the request's fields")) }
        let count = i2d_TS_REQ(request, nil)
        guard count > 0 else { throw .openSSL(drainOpenSSLErrors(fallback: "i2d_TS_REQ")) }
        var out = [UInt8](repeating: 0, count: Int(count))
        let written = out.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d_TS_REQ(request, &cursor)
        }
        guard written == count else { throw .openSSL(drainOpenSSLErrors(fallback: "i2d_TS_REQ")) }
        return out
    }

    /// Checks a DER `TimeStampResp`: the status is granted, the token's imprint is SHA-256 of exactly `digest`,
    /// the nonce (when given) is the one sent, and the CMS signature verifies with a signer certificate that chains
    /// to `caFile` and carries the critical timeStamping extended key usage (OpenSSL's TS verification). Returns
    /// the token's time and serial.
    public static func verify(
        response der: [UInt8], sha256 digest: [UInt8], caFile: String, nonce: [UInt8]? = nil
    ) throws(TimeStampError) -> TimeStampToken {
        guard der.count <= 1 << 20 else { throw .notAResponse("larger than 1 MiB") }
        let response: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_TS_RESP(nil, &cursor, buffer.count)
        }
        guard let response else { throw .notAResponse(drainOpenSSLErrors(fallback: "d2i_TS_RESP failed")) }
        defer { TS_RESP_free(response) }
        let status = Int(ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(response))))
        guard status == 0 || status == 1 else { throw .refused(status: status, text: "") }
        guard let info = TS_RESP_get_tst_info(response) else { throw .notAResponse("a granted status without a token") }
        guard let imprint = TS_TST_INFO_get_msg_imprint(info),
            let algorithm = TS_MSG_IMPRINT_get_algo(imprint)
        else { throw .imprintMismatch("the token has no message imprint") }
        var object: OpaquePointer? = nil
        X509_ALGOR_get0(&object, nil, nil, algorithm)
        guard OBJ_obj2nid(object) == NID_sha256 else { throw .imprintMismatch("its imprint is not SHA-256") }
        guard let hashed = TS_MSG_IMPRINT_get_msg(imprint),
            let data = ASN1_STRING_get0_data(hashed),
            Array(UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(hashed)))) == digest
        else { throw .imprintMismatch("its imprint is another hash") }
        if let nonce {
            let sent = nonce.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
            defer { BN_free(sent) }
            guard let received = TS_TST_INFO_get_nonce(info), let number = ASN1_INTEGER_to_BN(received, nil) else {
                throw .nonceMismatch
            }
            defer { BN_free(number) }
            guard BN_cmp(sent, number) == 0 else { throw .nonceMismatch }
        }

        guard let context = TS_VERIFY_CTX_new() else { throw .openSSL(drainOpenSSLErrors(fallback: "context")) }
        defer { TS_VERIFY_CTX_free(context) }
        guard let store = X509_STORE_new() else { throw .openSSL(drainOpenSSLErrors(fallback: "store")) }
        guard X509_STORE_load_file(store, caFile) == 1 else {
            X509_STORE_free(store)
            throw .trustAnchors(path: caFile, reason: drainOpenSSLErrors(fallback: "no certificate in it"))
        }
        TS_VERIFY_CTX_set_store(context, store)  // the context owns the store from here
        // The context frees the imprint with OPENSSL_free, so it must come from OpenSSL's allocator.
        guard let copy = CRYPTO_malloc(digest.count, #fileID, #line)?.assumingMemoryBound(to: UInt8.self) else {
            throw .openSSL("out of memory")
        }
        copy.initialize(from: digest, count: digest.count)
        TS_VERIFY_CTX_set_imprint(context, copy, digest.count)
        TS_VERIFY_CTX_set_flags(context, verifyVersion | verifySignature | verifyImprint)
        guard TS_RESP_verify_response(context, response) == 1 else {
            throw .notVerified(drainOpenSSLErrors(fallback: "TS_RESP_verify_response failed"))
        }

        var parts = tm()
        guard let time = TS_TST_INFO_get_time(info), ASN1_TIME_to_tm(time, &parts) == 1 else {
            throw .notAResponse("the token's time cannot be read")
        }
        let seconds = Int64(timegm(&parts))
        var serial = ""
        if let number = TS_TST_INFO_get_serial(info), let big = ASN1_INTEGER_to_BN(number, nil) {
            if let hex = BN_bn2hex(big) {
                serial = String(cString: hex)
                CRYPTO_free(hex, #fileID, #line)
            }
            BN_free(big)
        }
        return TimeStampToken(genTime: seconds, serial: serial)
    }

    /// The 32 bytes of a SHA-256 written as 64 lowercase hex digits; nil for anything else.
    public static func digest(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count == 2 * SHA256.digestCount else { return nil }
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case 0x30...0x39: return digit - 0x30
            case 0x61...0x66: return digit - 0x61 + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(SHA256.digestCount)
        var index = 0
        while index < digits.count {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
