// FuzzTargets: every parser a peer or an administrator can feed, as libFuzzer targets (issue 13 point 4).
//
// Each target feeds one input to a pure machine in chunks and checks properties that must hold for any input:
// no crash or trap, progress on every step, replies that are whole lines, the same result for any chunking, and
// round trips where the format has one. Fuzz/MailGateFuzz wraps `run` as LLVMFuzzerTestOneInput;
// Tests/FuzzTargetsTests replays the seed corpus and every kept crash through it in the normal test run.

/// The fuzz targets, by the name the corpus folders and `scripts/fuzz` use.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// IMAP before login (`IMAPServerSide`), then the proxy's command framer with LITERAL+ after it.
    case imapServer = "imap-server"
    /// The upstream's IMAP responses: the decoder and the streaming framer, each against the whole input.
    case imapResponses = "imap-responses"
    /// SMTP's server side (`SMTPServerSide`) through envelope, DATA and BDAT, and the command parser per line.
    case smtpServer = "smtp-server"
    /// DATA transparency: `DotUnstuffer` chunking-invariant, `DotStuffer` output never holding an end of data.
    case dotStuffing = "dot-stuffing"
    /// POP3's server side (`POP3ServerSide`) through login, RETR/TOP and UPDATE, and the command parser per line.
    case pop3Server = "pop3-server"
    /// Modified UTF-7 mailbox names (RFC 3501 §5.1.3): decode, and encode∘decode round trips.
    case modifiedUTF7 = "modified-utf7"
    /// The HTTP/1.1 reader of the token endpoint client and the loopback redirect receiver.
    case http
    /// The TOML configuration loader with every check it makes.
    case config

    /// Runs one input; returns normally or stops the process with the violated property. It blocks its thread for
    /// the async HTTP reader, so it is for libFuzzer's thread; tasks (tests) call `check`.
    public func run(_ data: [UInt8]) {
        if self == .http { return HTTPFuzz.runBlocking(FuzzInput(data)) }
        runSynchronous(FuzzInput(data))
    }

    /// The same as `run`, from a task.
    public func check(_ data: [UInt8]) async {
        if self == .http { return await HTTPFuzz.run(FuzzInput(data)) }
        runSynchronous(FuzzInput(data))
    }

    private func runSynchronous(_ input: FuzzInput) {
        switch self {
        case .imapServer: IMAPServerFuzz.run(input)
        case .imapResponses: IMAPResponsesFuzz.run(input)
        case .smtpServer: SMTPServerFuzz.run(input)
        case .dotStuffing: DotStuffingFuzz.run(input)
        case .pop3Server: POP3ServerFuzz.run(input)
        case .modifiedUTF7: ModifiedUTF7Fuzz.run(input)
        case .http: break  // async: `run` and `check` take it
        case .config: ConfigFuzz.run(input)
        }
    }
}

/// Every write a server side makes to its client is one or more whole lines.
func requireWholeLines(_ bytes: [UInt8], _ target: FuzzTarget) {
    require(bytes.count >= 2 && bytes[bytes.count - 2] == 0x0D && bytes[bytes.count - 1] == 0x0A, target,
        "a write to the client does not end in CRLF: \(String(decoding: bytes.suffix(80), as: UTF8.self).debugDescription)")
    for (index, byte) in bytes.enumerated() where byte == 0x0A {
        require(index > 0 && bytes[index - 1] == 0x0D, target, "a bare LF in a write to the client")
    }
}
