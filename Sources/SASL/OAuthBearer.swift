// SASL: the client side of OAUTHBEARER (RFC 7628), for upstreams that offer it instead of XOAUTH2.
public import MailCore

/// Builds the OAUTHBEARER client messages (RFC 7628 §3.1).
///
/// Wire form: `base64("n,a=" user "," ^A "host=" host ^A "port=" port ^A "auth=Bearer " token ^A ^A)`.
/// On failure the server sends a base64 JSON challenge; the client must answer `errorAcknowledgement`.
public enum OAuthBearer {
    /// The base64 initial response. `user` is the GS2 authzid; `,` and `=` in it are escaped as `=2C` and
    /// `=3D` (RFC 5801 §5).
    ///
    /// - Throws: `SASLError.forbiddenCharacter` when a value contains 0x01, CR or LF.
    public static func initialResponse(
        user: String, host: String, port: Int, accessToken: Redacted<String>
    ) throws(SASLError) -> Redacted<String> {
        try refuseSeparators(user, field: "user name")
        try refuseSeparators(host, field: "host name")
        try refuseSeparators(accessToken.revealed, field: "access token")
        var escapedUser = ""
        for character in user {
            switch character {
            case ",": escapedUser += "=2C"
            case "=": escapedUser += "=3D"
            default: escapedUser.append(character)
            }
        }
        let message = "n,a=" + escapedUser + ",\u{1}host=" + host + "\u{1}port=" + String(port)
            + "\u{1}auth=Bearer " + accessToken.revealed + "\u{1}\u{1}"
        return Redacted(Base64Codec.standard.encodeString(Array(message.utf8), padding: .required))
    }

    /// The client's reply to a server error challenge: a single 0x01, base64 `AQ==` (RFC 7628 §3.2.3).
    public static let errorAcknowledgement = "AQ=="
}
