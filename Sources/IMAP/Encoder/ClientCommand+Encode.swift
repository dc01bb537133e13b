// IMAP: writing a client command upstream, byte for byte except for replaced arguments and literal forms.

/// A new value for one argument of an `IMAPClientCommand`.
public enum IMAPTokenReplacement: Hashable, Sendable {
    /// A `mailbox` / `astring`: written as an atom when every byte is an ASTRING-CHAR, as a quoted string when it
    /// is printable ASCII (RFC 3501 quoted rules), else as a literal.
    case astring([UInt8])
    /// A `list-mailbox` pattern: like `.astring`, but `%` and `*` may stay in the atom form.
    case listMailbox([UInt8])
    /// Exact bytes, written as given (the caller guarantees the grammar).
    case raw([UInt8])
}

extension IMAPClientCommand {
    /// The command as segments for the upstream, with `replacements` (keyed by index into `arguments`) applied
    /// and every literal announcement in the form the upstream accepts: `{n+}` when it offers LITERAL+ (or LITERAL-
    /// and n ≤ 4096), else `{n}` followed by `.waitForContinuation` (the proxy waits for the upstream's `+` and
    /// does not pass it on). All other bytes are the client's. A command without literals or replacements comes
    /// back as its `raw` bytes, unchanged.
    ///
    /// For a `.head`, the trailing streamed literal's announcement is rewritten too; its octets follow from the
    /// stream (after the continuation, when one is required).
    ///
    ///     C: A5 SELECT Sent                     → A5 SELECT "Sent Items"
    ///     C: A6 APPEND Sent {310}               → A6 APPEND "Sent Items" {310+}   (upstream has LITERAL+)
    public func encodedForUpstream(
        replacing replacements: [Int: IMAPTokenReplacement] = [:], literalPlus: Bool, literalMinus: Bool = false
    ) -> [IMAPCommandSegment] {
        if replacements.isEmpty && !hasLiteral { return [.bytes(raw)] }
        var writer = IMAPCommandWriter(literalPlus: literalPlus, literalMinus: literalMinus)
        var cursor = 0
        for (index, token) in arguments.enumerated() {
            if let replacement = replacements[index] {
                writer.write(raw[cursor..<token.range.lowerBound])
                switch replacement {
                case .astring(let bytes): writer.writeAstring(bytes)
                case .listMailbox(let bytes): writer.writeListMailbox(bytes)
                case .raw(let bytes): writer.write(bytes)
                }
                cursor = token.range.upperBound
                continue
            }
            guard case .literal(let literal) = token.kind else { continue }
            writer.write(raw[cursor..<token.range.lowerBound])
            let nonSynchronizing = literalPlus || (literalMinus && literal.count <= IMAPCommandWriter.literalMinusLimit)
            writer.write(literal.wire(synchronizing: !nonSynchronizing))
            if !nonSynchronizing { writer.markStopPoint() }
            writer.write(raw[token.contentRange])
            cursor = token.range.upperBound
        }
        writer.write(raw[cursor...])
        return writer.finish()
    }
}

/// Which capabilities a client may see from the upstream's list, after login (issue 8 point 2).
///
/// Removed, because the gateway terminates or cannot pass them: `STARTTLS`, `LOGINDISABLED`, `AUTH=…`, `SASL-IR`
/// (authentication is over and was the gateway's), `COMPRESS=…` (the proxy reads every command), `LOGIN-REFERRALS`
/// and `MAILBOX-REFERRALS` (they name upstream hosts), `URLAUTH` (URLs name the upstream), `UTF8=…` and
/// `IMAP4rev2` (the folder map works on modified UTF-7 names of IMAP4rev1), and Exchange's internal
/// `CLIENTACCESSRULES`, `CLIENTNETWORKPRESENCELOCATION`, `BACKENDAUTHENTICATE`. `SPECIAL-USE` is added (the
/// gateway marks Sent/Trash/Junk itself). `LITERAL+` and `LITERAL-` pass: the command framer accepts `{n+}`
/// accordingly and the proxy writes literals in the upstream's form.
///
///     upstream: IMAP4 IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+
///     client:   IMAP4 IMAP4rev1 UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+ SPECIAL-USE
public enum IMAPCapabilityFilter {
    /// Removed when equal (case-insensitive).
    public static let removedNames: Set<String> = [
        "STARTTLS", "LOGINDISABLED", "SASL-IR", "LOGIN-REFERRALS", "MAILBOX-REFERRALS", "URLAUTH", "IMAP4REV2",
        "CLIENTACCESSRULES", "CLIENTNETWORKPRESENCELOCATION", "BACKENDAUTHENTICATE",
    ]
    /// Removed when starting with one of these (case-insensitive).
    public static let removedPrefixes: [String] = ["AUTH=", "COMPRESS=", "UTF8=", "URLAUTH="]

    /// The list the client sees: `upstream` minus what the gateway cannot pass (and minus `alsoRemove`), plus
    /// SPECIAL-USE (and `alsoAdd`), in the upstream's order, without duplicates.
    public static func clientCapabilities(
        fromUpstream upstream: [Capability], alsoRemove: [Capability] = [], alsoAdd: [Capability] = []
    ) -> [Capability] {
        var result: [Capability] = []
        for capability in upstream where passes(capability) && !alsoRemove.contains(capability) {
            if !result.contains(capability) { result.append(capability) }
        }
        for added in [Capability.specialUse] + alsoAdd where !result.contains(added) {
            result.append(added)
        }
        return result
    }

    /// Whether the gateway can pass `capability` to a client.
    public static func passes(_ capability: Capability) -> Bool {
        let name = capability.rawValue.uppercased()
        if removedNames.contains(name) { return false }
        return !removedPrefixes.contains { name.hasPrefix($0) }
    }

    /// `CAPABILITY` data as written on the wire (`IMAP4rev1 LITERAL+ …`), for `* CAPABILITY …` and `[CAPABILITY …]`.
    public static func wire(_ capabilities: [Capability]) -> String {
        capabilities.map(\.rawValue).joined(separator: " ")
    }
}
