// IMAP: cutting a client's byte stream into commands, literals included, streaming the large ones, within bounds.

import MailCore

/// Frames and lexes what an IMAP client sends (RFC 3501 §2.2, §4.3, §9; RFC 7888 `{n+}`; RFC 3516 `~{n}`),
/// resumable at every byte: append what the socket delivered, then call `next()` until it returns nil.
///
///     var framer = IMAPCommandFramer(limits: limits, literalPlusAdvertised: true)
///     framer.append(bytesFromClient)
///     while let event = try framer.next() {
///         switch event {
///         case .command(let command): …                  // forward command.raw, or re-encode it
///         case .literalRequest(let request): …           // send "+ Ready", then framer.acceptLiteral()
///         case .streamBegin(let head): …                 // APPEND head; octets follow as .streamBytes
///         …
///         }
///     }
///
/// **Literals.** A line whose content ends in `{n}`, `{n+}`, `~{n}` or `~{n+}` continues after n octets. Literals
/// up to `limits.inlineLiteral` (and while the command stays within `limits.inlineFrame`) are kept inside the
/// command and it comes out whole as `.command`. A larger one streams: `.streamBegin(head)`, `.streamBytes` chunks,
/// `.streamEnd`, after which the framer goes on with the rest of the command (another `.streamBegin` for
/// MULTIAPPEND, or `.streamTail` with the final bytes). For a synchronizing literal the framer first returns
/// `.literalRequest` and waits (returns nil) until the owner answers the client (`+` or a refusal) and calls
/// `acceptLiteral()` or `refuseLiteral()`. A synchronizing literal over `limits.commandLiteral` comes out as
/// `.literalTooLarge` (answer `NO [TOOBIG]`; the client will not send it).
///
/// **Errors.** A line that breaks the grammar (`{` without digits, NUL, bare CR, bare LF, unbalanced parentheses, a
/// bad tag) comes out as `.malformed` once the framer has skipped to the end of that command (non-synchronizing
/// literals it carried included); answer `BAD` and go on. Only input past a bound is fatal and thrown: a line
/// over `limits.commandLine`, a non-synchronizing literal over `limits.commandLiteral` (a part over
/// `inlineFrame + commandLine` is a safety net: literals that would pass `inlineFrame` stream instead). After a
/// throw every call throws the same error: close the connection.
///
/// **Raw lines.** `expectRawLine()` makes the next line come out as `.rawLine` without lexing: `DONE` during IDLE
/// (RFC 2177) and SASL responses during AUTHENTICATE (RFC 3501 §6.2.2).
public struct IMAPCommandFramer: Sendable {
    /// What `next()` hands out.
    public enum Event: Hashable, Sendable {
        /// A complete command, every literal inline.
        case command(IMAPClientCommand)
        /// The client announced a synchronizing literal and waits for `+`; call `acceptLiteral()` or `refuseLiteral()`.
        case literalRequest(IMAPLiteralRequest)
        /// A synchronizing literal over `limits.commandLiteral`: answer `tag NO [TOOBIG] …`. The framer has dropped
        /// the command already; the next bytes are a new command. When `command.isContinuation` (MULTIAPPEND's next
        /// message), the upstream holds the command's beginning: end it there first.
        case literalTooLarge(IMAPLiteralRequest)
        /// A literal too large to keep inline starts; `head` holds the command so far through the announcement.
        case streamBegin(IMAPClientCommand)
        /// The next octets of the streaming literal.
        case streamBytes([UInt8])
        /// The streaming literal is complete; the rest of the command follows.
        case streamEnd
        /// The rest of a command after its last streamed literal, through the final CRLF: the command is complete.
        case streamTail(IMAPClientCommand)
        /// The line asked for with `expectRawLine()`, without its CRLF (or LF).
        case rawLine([UInt8])
        /// A command that breaks the grammar, already skipped: answer `BAD` and go on.
        case malformed(IMAPMalformedCommand)
    }

    private enum Mode: Sendable {
        /// Reading a line segment that starts at `position`.
        case line
        /// Collecting an inline literal's octets; offsets are relative to `partStart`.
        case inlineLiteral(IMAPLiteralAnnouncement, headerOffset: Int, contentOffset: Int)
        /// `.literalRequest` was returned; waiting for `acceptLiteral()` / `refuseLiteral()`.
        case awaitingDecision(IMAPLiteralAnnouncement, headerOffset: Int, contentOffset: Int)
        /// Handing out a streaming literal's octets.
        case streaming(remaining: Int)
        /// The streaming literal's last octet was handed out; `.streamEnd` is next.
        case streamDone
        /// Skipping the rest of a malformed command (and `literalRemaining` octets first).
        case discarding(IMAPMalformedCommand, literalRemaining: Int)
        /// The next line is a raw line.
        case rawLine
        /// A bound was exceeded; the stream cannot be trusted any more.
        case failed(IMAPError)
    }

    /// What the lexer has found in the current command.
    private struct CommandState: Sendable {
        var tokens: [IMAPToken] = []
        var depth = 0
        var bracketDepth = 0
        /// Set once a part has been streamed: the tag, name and UID flag of the head.
        var identity: (tag: String, name: String, isUID: Bool)?
    }

    /// The bounds: `commandLine`, `commandLiteral`, `inlineLiteral`, `inlineFrame`, `parserDepth`.
    public let limits: IMAPLimits
    /// Whether LITERAL+ was advertised to this client: then `{n+}` may be as large as `limits.commandLiteral`,
    /// else (LITERAL- semantics, RFC 7888 §4) only up to 4096 octets; larger ones get `BAD`.
    public var literalPlusAdvertised: Bool
    /// Longest raw line (SASL responses are bounded by `Limits.saslResponse`, 12 288 octets), CRLF included.
    public var rawLineLimit: Int

    private var buffer: [UInt8] = []
    /// Start of the current part (command, or the rest after a streamed literal).
    private var partStart = 0
    /// Next byte not yet consumed: the start of the current line outside literals.
    private var position = 0
    /// Next byte not yet searched for LF.
    private var scanIndex = 0
    private var mode: Mode = .line
    private var state = CommandState()
    private var pendingEvent: Event?

    /// A framer with `limits`; `literalPlusAdvertised` says whether the client was offered LITERAL+.
    public init(limits: IMAPLimits = .standard, literalPlusAdvertised: Bool = false, rawLineLimit: Int? = nil) {
        self.limits = limits
        self.literalPlusAdvertised = literalPlusAdvertised
        self.rawLineLimit = rawLineLimit ?? max(limits.commandLine, Limits.standard.saslResponse + 2)
    }

    /// Bytes received and not yet handed out (streamed octets are handed out as they come).
    public var bufferedByteCount: Int { buffer.count - min(partStart, position) }

    /// Whether the framer is between commands (nothing of a command consumed yet): where raw-line mode may start
    /// and where buffered input may be taken over.
    public var isBetweenCommands: Bool {
        if case .line = mode, partStart == position, state.tokens.isEmpty, state.identity == nil { return true }
        return false
    }

    /// Whether `next()` waits for `acceptLiteral()` / `refuseLiteral()`.
    public var isAwaitingLiteralDecision: Bool {
        if case .awaitingDecision = mode { return true }
        return false
    }

    /// Adds bytes read from the client.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next line is handed out as `.rawLine` (IDLE's `DONE`, a SASL response). Only between commands.
    public mutating func expectRawLine() {
        guard isBetweenCommands else {
            assertionFailure("expectRawLine() called inside a command")
            return
        }
        mode = .rawLine
    }

    /// Back to commands if a raw line was expected but is no longer (the exchange ended otherwise).
    public mutating func cancelRawLine() {
        if case .rawLine = mode { mode = .line }
    }

    /// The client was sent `+`: its literal's octets are next.
    public mutating func acceptLiteral() {
        guard case .awaitingDecision(let literal, let headerOffset, let contentOffset) = mode else {
            assertionFailure("acceptLiteral() without a literal request")
            return
        }
        mode = .line
        pendingEvent = beginLiteral(literal, headerOffset: headerOffset, contentOffset: contentOffset)
    }

    /// The client was refused the literal (`NO`/`BAD`): it abandons the command, so the framer drops what it had
    /// of it; the next bytes are a new command.
    public mutating func refuseLiteral() {
        guard case .awaitingDecision = mode else {
            assertionFailure("refuseLiteral() without a literal request")
            return
        }
        resetCommand()
        mode = .line
        compact()
    }

    /// Takes every byte not yet handed out (between commands only), e.g. when the pre-login machine hands the
    /// connection to the proxy; the framer is empty afterwards.
    public mutating func takeBufferedInput() -> [UInt8] {
        let rest = Array(buffer[position...])
        buffer = []
        partStart = 0
        position = 0
        scanIndex = 0
        return rest
    }

    /// The next event, or nil until more bytes arrive (or, after `.literalRequest`, until a decision).
    public mutating func next() throws(IMAPError) -> Event? {
        if let pendingEvent {
            self.pendingEvent = nil
            return pendingEvent
        }
        while true {
            switch mode {
            case .failed(let error):
                throw error
            case .awaitingDecision:
                return nil
            case .rawLine:
                guard let lineFeed = findLineFeed() else {
                    if buffer.count - position > rawLineLimit {
                        return try fail(.lineTooLong(actualCount: buffer.count - position, maximumCount: rawLineLimit))
                    }
                    return nil
                }
                if lineFeed + 1 - position > rawLineLimit {
                    return try fail(.lineTooLong(actualCount: lineFeed + 1 - position, maximumCount: rawLineLimit))
                }
                var end = lineFeed
                if end > position && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = Array(buffer[position..<end])
                position = lineFeed + 1
                partStart = position
                scanIndex = position
                mode = .line
                compact()
                return .rawLine(line)
            case .streaming(let remaining):
                let available = buffer.count - position
                guard available > 0 else { return nil }
                let count = min(available, remaining)
                let chunk = Array(buffer[position..<(position + count)])
                position += count
                partStart = position
                scanIndex = position
                mode = remaining == count ? .streamDone : .streaming(remaining: remaining - count)
                compact()
                return .streamBytes(chunk)
            case .streamDone:
                mode = .line
                partStart = position
                scanIndex = position
                state.tokens = []
                return .streamEnd
            case .inlineLiteral(let literal, let headerOffset, let contentOffset):
                let contentStart = partStart + contentOffset
                guard buffer.count - contentStart >= literal.count else { return nil }
                let contentEnd = contentStart + literal.count
                state.tokens.append(
                    IMAPToken(
                        kind: .literal(literal), range: headerOffset..<(contentEnd - partStart),
                        contentRange: contentOffset..<(contentEnd - partStart),
                        value: Array(buffer[contentStart..<contentEnd]), depth: state.depth))
                position = contentEnd
                scanIndex = contentEnd
                mode = .line
            case .discarding(let malformed, let literalRemaining):
                if literalRemaining > 0 {
                    let count = min(literalRemaining, buffer.count - position)
                    position += count
                    partStart = position
                    scanIndex = position
                    compact()
                    guard count == literalRemaining else {
                        mode = .discarding(malformed, literalRemaining: literalRemaining - count)
                        return nil
                    }
                    mode = .discarding(malformed, literalRemaining: 0)
                    continue
                }
                guard let lineFeed = try lineFeedWithinBound() else { return nil }
                var contentEnd = lineFeed
                if contentEnd > position && buffer[contentEnd - 1] == UInt8(ascii: "\r") { contentEnd -= 1 }
                let literal = announcement(in: position..<contentEnd)?.literal
                position = lineFeed + 1
                partStart = position
                scanIndex = position
                if let literal, !literal.synchronizing {
                    guard literal.count <= limits.commandLiteral else {
                        return try fail(
                            .literalTooLarge(announcedCount: literal.count, maximumCount: limits.commandLiteral))
                    }
                    mode = .discarding(malformed, literalRemaining: literal.count)
                    continue
                }
                resetCommand()
                mode = .line
                compact()
                return .malformed(malformed)
            case .line:
                guard let lineFeed = try lineFeedWithinBound() else { return nil }
                if let event = try segment(endingAt: lineFeed) { return event }
            }
        }
    }

    // MARK: - Lines

    private func findLineFeed() -> Int? {
        buffer[max(scanIndex, position)...].firstIndex(of: UInt8(ascii: "\n"))
    }

    /// The LF ending the line at `position`, checking `limits.commandLine` and `limits.inlineFrame` before
    /// anything more is kept; nil (after remembering how far it searched) when the line is incomplete.
    private mutating func lineFeedWithinBound() throws(IMAPError) -> Int? {
        guard let lineFeed = findLineFeed() else {
            scanIndex = buffer.count
            let pending = buffer.count - position
            if pending > limits.commandLine {
                _ = try fail(.lineTooLong(actualCount: pending, maximumCount: limits.commandLine))
            }
            return nil
        }
        let length = lineFeed + 1 - position
        if length > limits.commandLine {
            _ = try fail(.lineTooLong(actualCount: length, maximumCount: limits.commandLine))
        }
        // Inline literals keep a part within `inlineFrame`; one more line may follow before the next literal
        // streams or the command ends.
        let partLength = lineFeed + 1 - partStart
        if partLength > limits.inlineFrame + limits.commandLine {
            _ = try fail(
                .commandTooLarge(actualCount: partLength, maximumCount: limits.inlineFrame + limits.commandLine))
        }
        return lineFeed
    }

    private mutating func fail(_ error: IMAPError) throws(IMAPError) -> Event? {
        mode = .failed(error)
        buffer = []
        partStart = 0
        position = 0
        scanIndex = 0
        throw error
    }

    /// Handles the line segment from `position` to `lineFeed`: lexes it, and ends the command, starts a literal,
    /// or reports a malformed command.
    private mutating func segment(endingAt lineFeed: Int) throws(IMAPError) -> Event? {
        let lineStart = position
        let hasCR = lineFeed > lineStart && buffer[lineFeed - 1] == UInt8(ascii: "\r")
        let contentEnd = hasCR ? lineFeed - 1 : lineFeed
        let isTail = state.identity != nil
        position = lineFeed + 1
        scanIndex = position
        if lineStart == partStart && contentEnd == lineStart && !isTail {
            return try malformed(hasCR ? .emptyLine : .bareLineFeed, literal: nil)
        }
        let found = hasCR || isTail ? announcement(in: lineStart..<contentEnd) : nil
        let lexError = lex(lineStart..<(found?.start ?? contentEnd), lenient: isTail)
        if !hasCR && !isTail {
            // Lexed first so that the BAD carries the tag; a bare LF never announces a literal.
            return try malformed(.bareLineFeed, literal: nil)
        }
        if let lexError {
            return try malformed(lexError, literal: found?.literal)
        }
        guard let (literal, literalStart) = found else {
            if !isTail {
                if state.depth != 0 { return try malformed(.unbalancedParentheses, literal: nil) }
                if state.bracketDepth != 0 { return try malformed(.unbalancedBrackets, literal: nil) }
            }
            let command: IMAPClientCommand
            switch identify(part: isTail ? .tail : .whole, end: position) {
            case .success(let identified): command = identified
            case .failure(let failure): return try malformed(failure.reason, literal: nil)
            }
            resetCommand()
            compact()
            return isTail ? .streamTail(command) : .command(command)
        }
        let headerOffset = literalStart - partStart
        let contentOffset = position - partStart
        let head: IMAPClientCommand
        switch identify(part: .head, end: position, literal: literal, headerOffset: headerOffset) {
        case .success(let identified): head = identified
        case .failure(let failure): return try malformed(failure.reason, literal: literal)
        }
        if literal.synchronizing {
            let request = IMAPLiteralRequest(
                command: head, literal: literal, inline: isInline(literal, contentOffset: contentOffset))
            if literal.count > limits.commandLiteral {
                resetCommand()
                compact()
                return .literalTooLarge(request)
            }
            mode = .awaitingDecision(literal, headerOffset: headerOffset, contentOffset: contentOffset)
            return .literalRequest(request)
        }
        guard literal.count <= limits.commandLiteral else {
            return try fail(.literalTooLarge(announcedCount: literal.count, maximumCount: limits.commandLiteral))
        }
        if literal.count > IMAPLimits.literalMinusLimit && !literalPlusAdvertised {
            return try malformed(.nonSynchronizingLiteralTooLarge, literal: literal)
        }
        return beginLiteral(literal, headerOffset: headerOffset, contentOffset: contentOffset)
    }

    private func isInline(_ literal: IMAPLiteralAnnouncement, contentOffset: Int) -> Bool {
        literal.count <= limits.inlineLiteral && contentOffset + literal.count <= limits.inlineFrame
    }

    /// Starts collecting (inline) or streaming a literal whose octets begin at `partStart + contentOffset`.
    private mutating func beginLiteral(
        _ literal: IMAPLiteralAnnouncement, headerOffset: Int, contentOffset: Int
    ) -> Event? {
        if isInline(literal, contentOffset: contentOffset) {
            mode = .inlineLiteral(literal, headerOffset: headerOffset, contentOffset: contentOffset)
            return nil
        }
        let end = partStart + contentOffset
        guard case .success(let head) = identify(part: .head, end: end, literal: literal, headerOffset: headerOffset)
        else {
            assertionFailure("a head identified before cannot fail now")
            return nil
        }
        if state.identity == nil { state.identity = (head.tag, head.name, head.isUID) }
        position = end
        partStart = end
        scanIndex = end
        state.tokens = []
        mode = literal.count == 0 ? .streamDone : .streaming(remaining: literal.count)
        compact()
        return .streamBegin(head)
    }

    /// Reports `reason` once the rest of the command is skipped: at once when the line ends the command or
    /// announces a synchronizing literal (the client waits), else after the non-synchronizing literal's octets.
    private mutating func malformed(_ reason: IMAPMalformedCommand.Reason, literal: IMAPLiteralAnnouncement?)
        throws(IMAPError)
        -> Event?
    {
        let tag = state.identity?.tag ?? leadingTag()
        let malformed = IMAPMalformedCommand(tag: tag, reason: reason, afterStreamedPart: state.identity != nil)
        state = CommandState()
        partStart = position
        if let literal, !literal.synchronizing {
            guard literal.count <= limits.commandLiteral else {
                return try fail(.literalTooLarge(announcedCount: literal.count, maximumCount: limits.commandLiteral))
            }
            mode = .discarding(malformed, literalRemaining: literal.count)
            return nil
        }
        resetCommand()
        compact()
        return .malformed(malformed)
    }

    private mutating func resetCommand() {
        state = CommandState()
        partStart = position
        scanIndex = position
    }

    // MARK: - Lexing

    /// `[~]{digits[+]}` at the end of `range`, preceded by SP or `(`: the literal and where its announcement starts.
    private func announcement(in range: Range<Int>) -> (literal: IMAPLiteralAnnouncement, start: Int)? {
        let lower = range.lowerBound
        var end = range.upperBound
        guard end - lower >= 3, buffer[end - 1] == UInt8(ascii: "}") else { return nil }
        end -= 1
        var synchronizing = true
        if buffer[end - 1] == UInt8(ascii: "+") {
            synchronizing = false
            end -= 1
        }
        var digitsStart = end
        while digitsStart > lower && CharacterClass.isDigit(buffer[digitsStart - 1]) { digitsStart -= 1 }
        guard digitsStart < end, digitsStart > lower, buffer[digitsStart - 1] == UInt8(ascii: "{") else { return nil }
        var start = digitsStart - 1
        let binary = start > lower && buffer[start - 1] == UInt8(ascii: "~")
        if binary { start -= 1 }
        guard start > lower, buffer[start - 1] == UInt8(ascii: " ") || buffer[start - 1] == UInt8(ascii: "(") else {
            return nil
        }
        var count = 0
        for digit in buffer[digitsStart..<end] {
            guard count <= (Int.max - 9) / 10 else {
                count = Int.max
                break
            }
            count = count * 10 + Int(digit - UInt8(ascii: "0"))
        }
        return (IMAPLiteralAnnouncement(count: count, synchronizing: synchronizing, binary: binary), start)
    }

    /// Lexes `range` into `state.tokens`; the first grammar error, or nil. Lenient lexing (the rest of a command
    /// whose head already went upstream) skips bad bytes instead.
    private mutating func lex(_ range: Range<Int>, lenient: Bool) -> IMAPMalformedCommand.Reason? {
        var index = range.lowerBound
        let end = range.upperBound
        while index < end {
            if state.bracketDepth > 0 {
                if let reason = lexAtom(&index, end: end) {
                    if !lenient { return reason }
                    index += 1
                }
                continue
            }
            let byte = buffer[index]
            switch byte {
            case UInt8(ascii: " "):
                index += 1
            case UInt8(ascii: "("):
                guard state.depth < limits.parserDepth else {
                    if lenient {
                        index += 1
                        continue
                    }
                    return .tooMuchNesting
                }
                appendToken(.listOpen, index..<(index + 1), contentRange: index..<index, value: [])
                state.depth += 1
                index += 1
            case UInt8(ascii: ")"):
                guard state.depth > 0 else {
                    if lenient {
                        index += 1
                        continue
                    }
                    return .unbalancedParentheses
                }
                state.depth -= 1
                appendToken(.listClose, index..<(index + 1), contentRange: index..<index, value: [])
                index += 1
            case UInt8(ascii: "\""):
                if let reason = lexQuoted(&index, end: end) {
                    if !lenient { return reason }
                    index = end
                }
            case UInt8(ascii: "{"):
                if !lenient { return .misplacedLiteral }
                index += 1
            default:
                if let reason = Self.controlReason(byte) {
                    if !lenient { return reason }
                    index += 1
                    continue
                }
                if let reason = lexAtom(&index, end: end) {
                    if !lenient { return reason }
                    index += 1
                }
            }
        }
        return nil
    }

    private static func controlReason(_ byte: UInt8) -> IMAPMalformedCommand.Reason? {
        switch byte {
        case 0: .nulByte
        case UInt8(ascii: "\r"): .bareCarriageReturn
        case 0x01..<0x20, 0x7F: .controlCharacter
        default: nil
        }
    }

    /// An atom from `index`: any byte but SP, `(`, `)`, `{`, `"` and controls; inside `[...]` also SP,
    /// parentheses and quoted strings (`BODY[HEADER.FIELDS (FROM "X-Y")]`).
    private mutating func lexAtom(_ index: inout Int, end: Int) -> IMAPMalformedCommand.Reason? {
        let start = index
        while index < end {
            let byte = buffer[index]
            if let reason = Self.controlReason(byte) {
                if index > start { break }
                return reason
            }
            if state.bracketDepth > 0 {
                switch byte {
                case UInt8(ascii: "["):
                    state.bracketDepth += 1
                case UInt8(ascii: "]"):
                    state.bracketDepth -= 1
                case UInt8(ascii: "{"):
                    return .misplacedLiteral
                case UInt8(ascii: "\""):
                    var quoteEnd = index + 1
                    while quoteEnd < end && buffer[quoteEnd] != UInt8(ascii: "\"") {
                        if buffer[quoteEnd] == UInt8(ascii: "\\") { quoteEnd += 1 }
                        quoteEnd += 1
                    }
                    guard quoteEnd < end else { return .unterminatedQuoted }
                    index = quoteEnd
                default:
                    break
                }
                index += 1
                continue
            }
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "{"), UInt8(ascii: "\""):
                break
            case UInt8(ascii: "["):
                state.bracketDepth += 1
                index += 1
                continue
            default:
                index += 1
                continue
            }
            break
        }
        if index > start {
            appendToken(.atom, start..<index, contentRange: start..<index, value: Array(buffer[start..<index]))
        }
        return nil
    }

    // quoted = DQUOTE *QUOTED-CHAR DQUOTE ; QUOTED-CHAR = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials
    // (8-bit bytes are accepted: UTF-8 in quoted strings, RFC 9051 / RFC 6855.)
    private mutating func lexQuoted(_ index: inout Int, end: Int) -> IMAPMalformedCommand.Reason? {
        let start = index
        index += 1
        var value: [UInt8] = []
        while index < end {
            let byte = buffer[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                appendToken(.quoted, start..<index, contentRange: (start + 1)..<(index - 1), value: value)
                return nil
            case UInt8(ascii: "\\"):
                guard index + 1 < end else { return .unterminatedQuoted }
                let escaped = buffer[index + 1]
                guard escaped == UInt8(ascii: "\"") || escaped == UInt8(ascii: "\\") else {
                    return .invalidQuotedEscape
                }
                value.append(escaped)
                index += 2
            default:
                if let reason = Self.controlReason(byte) { return reason }
                value.append(byte)
                index += 1
            }
        }
        return .unterminatedQuoted
    }

    /// Appends a token, converting absolute buffer ranges to offsets in the current part.
    private mutating func appendToken(
        _ kind: IMAPToken.Kind, _ range: Range<Int>, contentRange: Range<Int>, value: [UInt8]
    ) {
        let depth = state.depth
        state.tokens.append(
            IMAPToken(
                kind: kind, range: (range.lowerBound - partStart)..<(range.upperBound - partStart),
                contentRange: (contentRange.lowerBound - partStart)..<(contentRange.upperBound - partStart),
                value: value, depth: depth))
    }

    // MARK: - Commands

    private struct IdentifyFailure: Error {
        let reason: IMAPMalformedCommand.Reason
    }

    /// The tag of the command being read, if its first token is a valid one.
    private func leadingTag() -> String? {
        guard let first = state.tokens.first, first.kind == .atom, first.range.lowerBound == 0,
            first.value.allSatisfy(CharacterClass.isTagChar)
        else { return nil }
        return String(decoding: first.value, as: UTF8.self)
    }

    /// The current part as a command: tag, name and `UID` taken from the first tokens (or from the head when this
    /// is a tail). For a head, the literal that follows is appended as an argument without octets.
    private func identify(
        part: IMAPClientCommand.Part, end: Int, literal: IMAPLiteralAnnouncement? = nil, headerOffset: Int = 0
    ) -> Result<IMAPClientCommand, IdentifyFailure> {
        var arguments = state.tokens
        if let literal {
            let contentOffset = end - partStart
            arguments.append(
                IMAPToken(
                    kind: .literal(literal), range: headerOffset..<contentOffset,
                    contentRange: contentOffset..<contentOffset, value: [], depth: state.depth))
        }
        let raw = Array(buffer[partStart..<end])
        if let identity = state.identity {
            return .success(
                IMAPClientCommand(
                    tag: identity.tag, name: identity.name, isUID: identity.isUID, arguments: arguments, raw: raw,
                    part: part == .whole ? .tail : part, streamedLiteral: literal, isContinuation: true))
        }
        guard let tag = leadingTag() else { return .failure(IdentifyFailure(reason: .missingTag)) }
        func atom(_ index: Int) -> String? {
            guard index < state.tokens.count, state.tokens[index].kind == .atom, state.tokens[index].depth == 0,
                state.tokens[index].value.allSatisfy(CharacterClass.isAtomChar)
            else { return nil }
            return String(decoding: state.tokens[index].value, as: UTF8.self).uppercased()
        }
        guard var name = atom(1) else { return .failure(IdentifyFailure(reason: .missingCommand)) }
        var argumentStart = 2
        var isUID = false
        if name == "UID", let next = atom(2) {
            name = next
            isUID = true
            argumentStart = 3
        }
        arguments.removeFirst(min(argumentStart, arguments.count))
        return .success(
            IMAPClientCommand(
                tag: tag, name: name, isUID: isUID, arguments: arguments, raw: raw, part: part,
                streamedLiteral: literal))
    }

    // MARK: - Buffer

    /// Drops consumed bytes once they are all consumed or make up a large part of the buffer.
    private mutating func compact() {
        let keep = min(partStart, position)
        if keep == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1_048_576)
        } else if keep >= 65_536 || (keep > 0 && keep >= buffer.count / 2) {
            buffer.removeFirst(keep)
        } else {
            return
        }
        partStart -= keep
        position -= keep
        scanIndex = max(0, scanIndex - keep)
    }
}
