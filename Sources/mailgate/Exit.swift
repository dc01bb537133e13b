// mailgate: exit statuses and the mapping of typed errors to them, with one sentence on stderr.
import ArgumentParser
import Config
import Crypto
import Foundation
import MailCore
import Store

/// A command's own failure: a sentence and the exit status it means.
struct CommandFailure: MailGateError {
    var message: String
    var status: Int32

    /// A check or operation that failed (exit 1).
    static func failed(_ message: String) -> CommandFailure { CommandFailure(message: message, status: Exit.failure) }
    /// Bad usage (exit 2).
    static func usage(_ message: String) -> CommandFailure { CommandFailure(message: message, status: Exit.usage) }

    var description: String { message }
}

/// Exit statuses of DESIGN.md §4.
enum Exit {
    static let success: Int32 = 0
    static let failure: Int32 = 1
    static let usage: Int32 = 2

    /// Prints `message` to stderr as one line.
    static func printError(_ message: String) {
        FileHandle.standardError.write(Data(("mailgate: " + message + "\n").utf8))
    }

    /// Ends the process for `error`: configuration and usage problems exit 2, failed operations exit 1, help and
    /// version requests exit 0 through ArgumentParser.
    static func terminate(with error: any Error) -> Never {
        switch error {
        case let failure as CommandFailure:
            printError(failure.message)
            exit(failure.status)
        case let configError as ConfigError:
            printError(configError.description)
            exit(usage)
        case let mailError as any MailGateError:
            printError(mailError.description)
            exit(failure)
        default:
            break
        }
        let code = MailGate.exitCode(for: error)
        if code == .validationFailure {
            // ArgumentParser's own usage errors (EX_USAGE, 64) become the contract's 2.
            printError(MailGate.message(for: error) + " (see `mailgate help`)")
            exit(usage)
        }
        MailGate.exit(withError: error)
    }
}
