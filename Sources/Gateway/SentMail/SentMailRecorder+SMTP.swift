// Gateway: the sent-mail recorder behind the SMTP gateway's recording seam.
public import Dispatch

extension SentMailRecorder: MessageRecorder {
    public func beginRecording(
        account: String, listener: String, mailFrom: String, recipients: [String], policy: SMTPSentMailPolicy
    ) -> any MessageRecordingProtocol {
        let recording: MessageRecording = begin(
            account: account, listener: listener, mailFrom: mailFrom, recipients: recipients, policy: policy)
        return recording
    }
}

extension MessageRecording: MessageRecordingProtocol {
    // append(_:) and finishInput() satisfy the protocol as they are (typed throws); the completions widen.
    public func prepareCommit(on queue: DispatchQueue, completion: @escaping (Result<Void, any Error>) -> Void) {
        prepareCommit(on: queue) { (result: Result<Void, SentMailError>) in completion(result.mapError { $0 }) }
    }

    public func commit(
        upstreamReply: String, on queue: DispatchQueue, completion: @escaping (Result<Void, any Error>) -> Void
    ) {
        commit(upstreamReply: upstreamReply, on: queue) { (result: Result<Void, SentMailError>) in
            completion(result.mapError { $0 })
        }
    }
}
