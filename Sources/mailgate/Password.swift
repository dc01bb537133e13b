// mailgate: reading a local password from stdin or from the terminal without echo.
import Foundation
import Glibc

enum PasswordInput {
    /// The longest password accepted (bytes).
    static let maximumLength = 1_024

    /// One line from standard input (trailing CR/LF removed), for `--password-stdin`.
    static func fromStandardInput() throws -> String {
        let line = try readLine(fd: STDIN_FILENO)
        guard let line else { throw CommandFailure.usage("no password on standard input; pipe it in, one line.") }
        return try validated(line)
    }

    /// Asks twice on the controlling terminal with echo switched off.
    static func prompt(for email: String) throws -> String {
        let tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)
        guard tty >= 0 else {
            throw CommandFailure.usage("there is no terminal to ask for the password; use --password-stdin.")
        }
        defer { close(tty) }
        var original = termios()
        guard tcgetattr(tty, &original) == 0 else {
            throw CommandFailure.usage("cannot switch off echo on the terminal; use --password-stdin.")
        }
        var silent = original
        silent.c_lflag &= ~tcflag_t(ECHO)
        _ = tcsetattr(tty, TCSAFLUSH, &silent)
        defer { _ = tcsetattr(tty, TCSAFLUSH, &original) }
        func ask(_ text: String) throws -> String {
            _ = text.withCString { write(tty, $0, strlen($0)) }
            let line = try readLine(fd: tty)
            _ = write(tty, "\n", 1)
            guard let line else { throw CommandFailure.usage("no password entered.") }
            return line
        }
        let first = try ask("Local password for \(email): ")
        let second = try ask("Repeat the password: ")
        guard first == second else { throw CommandFailure.failed("the two passwords differ; nothing was changed.") }
        return try validated(first)
    }

    private static func validated(_ password: String) throws -> String {
        guard !password.isEmpty else { throw CommandFailure.usage("the password is empty; choose a real one.") }
        return password
    }

    /// Reads bytes until LF or end of input, at most `maximumLength` of them; `nil` at immediate end of input.
    private static func readLine(fd: Int32) throws -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        var sawAny = false
        while true {
            let count = read(fd, &byte, 1)
            if count < 0 {
                if errno == EINTR { continue }
                throw CommandFailure.failed("reading the password failed: \(String(cString: strerror(errno))).")
            }
            if count == 0 { break }
            sawAny = true
            if byte == 0x0A { break }
            bytes.append(byte)
            guard bytes.count <= maximumLength else {
                throw CommandFailure.usage("the password is longer than \(maximumLength) bytes.")
            }
        }
        guard sawAny else { return nil }
        if bytes.last == 0x0D { bytes.removeLast() }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CommandFailure.usage("the password is not valid UTF-8.")
        }
        return text
    }
}
