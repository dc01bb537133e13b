// SMTP: the service extensions a server announces in its EHLO response (RFC 5321 §4.1.1.1).

/// What an EHLO response offered, e.g. Exchange Online's `SIZE 157286400`, `PIPELINING`, `CHUNKING`, …
///
/// Keywords are matched case-insensitively. Used both to read the upstream's offer and to decide what
/// MailGate may offer its own clients (never more than the upstream can take).
public struct SMTPExtensions: Sendable, Hashable {
    /// The domain the server named on the first EHLO line.
    public var serverName: String = ""
    /// `SIZE n` (RFC 1870): `nil` when not advertised; `0` means advertised without a fixed maximum.
    public var maximumSize: Int?
    public var pipelining = false
    public var eightBitMIME = false
    public var smtpUTF8 = false
    public var chunking = false
    public var binaryMIME = false
    public var dsn = false
    public var enhancedStatusCodes = false
    public var startTLS = false
    /// Mechanisms from `AUTH m1 m2` (or the old `AUTH=m1 m2`), upper-cased, in order.
    public var authMechanisms: [String] = []
    /// Keywords this type does not model, upper-cased, with their parameters as sent.
    public var other: [String] = []

    public init() {}

    /// Whether the server advertised `SIZE`.
    public var sizeAdvertised: Bool { maximumSize != nil }

    /// Reads an EHLO reply; the first line is the greeting, every further line one keyword and its parameters.
    public init(ehloReply: SMTPReply) {
        self.init()
        guard let first = ehloReply.lines.first else { return }
        serverName = String(first.split(separator: " ").first ?? "")
        for line in ehloReply.lines.dropFirst() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "=" }).map { String($0) }
            guard let keyword = words.first?.uppercased() else { continue }
            let parameters = Array(words.dropFirst())
            switch keyword {
            case "SIZE": maximumSize = parameters.first.flatMap { Int($0) }.map { max($0, 0) } ?? 0
            case "PIPELINING": pipelining = true
            case "8BITMIME": eightBitMIME = true
            case "SMTPUTF8": smtpUTF8 = true
            case "CHUNKING": chunking = true
            case "BINARYMIME": binaryMIME = true
            case "DSN": dsn = true
            case "ENHANCEDSTATUSCODES": enhancedStatusCodes = true
            case "STARTTLS": startTLS = true
            case "AUTH":
                for mechanism in parameters.map({ $0.uppercased() }) where !authMechanisms.contains(mechanism) {
                    authMechanisms.append(mechanism)
                }
            default: other.append(line.uppercased())
            }
        }
    }

    /// The keyword lines for an EHLO response, in a fixed order (without the greeting line).
    public var keywordLines: [String] {
        var lines: [String] = []
        if pipelining { lines.append("PIPELINING") }
        if let maximumSize { lines.append(maximumSize > 0 ? "SIZE \(maximumSize)" : "SIZE") }
        if dsn { lines.append("DSN") }
        if enhancedStatusCodes { lines.append("ENHANCEDSTATUSCODES") }
        if startTLS { lines.append("STARTTLS") }
        if !authMechanisms.isEmpty { lines.append((["AUTH"] + authMechanisms).joined(separator: " ")) }
        if eightBitMIME { lines.append("8BITMIME") }
        if binaryMIME { lines.append("BINARYMIME") }
        if chunking { lines.append("CHUNKING") }
        if smtpUTF8 { lines.append("SMTPUTF8") }
        return lines + other
    }
}
