// FuzzTargets: the text formats — modified UTF-7 mailbox names, HTTP/1.1 from the identity platform and the
// browser, and the TOML configuration.
import Config
import Dispatch
import IMAP
import OAuth

/// Modified UTF-7: whatever decodes encodes back to the same wire form's meaning.
enum ModifiedUTF7Fuzz {
    static func run(_ input: FuzzInput) {
        let target = FuzzTarget.modifiedUTF7
        if let decoded = try? ModifiedUTF7.decode(bytes: input.payload) {
            let encoded = ModifiedUTF7.encode(decoded)
            require((try? ModifiedUTF7.decode(encoded)) == decoded, target, "encode(decode(x)) does not decode to the same name")
        }
        let name = String(decoding: input.payload, as: UTF8.self)
        require((try? ModifiedUTF7.decode(ModifiedUTF7.encode(name))) == name, target, "decode(encode(name)) is not name")
    }
}

/// The HTTP reader, as a response (token endpoint) and as a request head (loopback redirect).
enum HTTPFuzz {
    static func run(_ input: FuzzInput) async {
        let target = FuzzTarget.http
        let chunks = input.chunks
        let limits = HTTPLimits(headerBytes: 2_048, headerLines: 20, bodyBytes: 4_096)
        if case .success(let response) = await HTTPReaderFuzzing.fuzzResponse(chunks, limits: limits) {
            require((100..<600).contains(response.status), target, "status \(response.status) accepted")
            require(response.bodyCount <= limits.bodyBytes, target, "a body of \(response.bodyCount) bytes passed the bound")
        }
        if case .success(let head?) = await HTTPReaderFuzzing.fuzzRequestHead(chunks, limits: limits) {
            require(head.headerCount <= limits.headerLines, target, "\(head.headerCount) header lines passed the bound")
        }
    }

    /// Runs the async check to its end from libFuzzer's synchronous callback (never from a task: it blocks).
    static func runBlocking(_ input: FuzzInput) {
        let done = DispatchSemaphore(value: 0)
        Task {
            await run(input)
            done.signal()
        }
        done.wait()
    }
}

/// The configuration loader: any text is a configuration or a `ConfigError`, never a crash.
enum ConfigFuzz {
    static func run(_ input: FuzzInput) {
        let text = String(decoding: input.payload, as: UTF8.self)
        _ = try? ConfigurationLoader.parse(text: text, path: "/nonexistent/fuzz/mailgate.toml")
    }
}
