// SASL: the client side of XOAUTH2, the mechanism Microsoft 365 accepts for IMAP, POP3 and SMTP.
public import MailCore

/// Builds the single XOAUTH2 client message (Google's definition, used by Exchange Online).
///
/// Wire form: `base64("user=" user ^A "auth=Bearer " token ^A ^A)`, sent after `334` (SMTP), `+` (POP3)
/// or as the SASL-IR argument (IMAP). On failure SMTP may send a `334` error challenge; answer it with an
/// empty line and expect `535`.
public enum XOAuth2 {
    /// The base64 initial response for `user` and `accessToken`.
    ///
    /// - Throws: `SASLError.forbiddenCharacter` when either value contains 0x01, CR or LF, which would
    ///   let a value forge or cut the message's fields.
    public static func initialResponse(user: String, accessToken: Redacted<String>) throws(SASLError) -> Redacted<String> {
        let message = try rawResponse(user: user, accessToken: accessToken)
        return Redacted(Base64Codec.standard.encodeString(message.revealed, padding: .required))
    }

    /// The same message before base64, for protocol encoders that do the base64 themselves (IMAP, POP3).
    public static func rawResponse(user: String, accessToken: Redacted<String>) throws(SASLError) -> Redacted<[UInt8]> {
        try refuseSeparators(user, field: "user name")
        try refuseSeparators(accessToken.revealed, field: "access token")
        return Redacted(Array(("user=" + user + "\u{1}auth=Bearer " + accessToken.revealed + "\u{1}\u{1}").utf8))
    }
}

/// Rejects the bytes that separate SASL fields (0x01) or end a protocol line (CR, LF).
func refuseSeparators(_ value: String, field: String) throws(SASLError) {
    for byte in value.utf8 where byte == 0x01 || byte == 0x0D || byte == 0x0A {
        throw SASLError.forbiddenCharacter(field: field)
    }
}
