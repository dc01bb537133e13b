// Gateway: sd_notify(3) written by hand: one datagram to $NOTIFY_SOCKET per state change (READY, RELOADING,
// STOPPING), so that a `Type=notify` unit knows when the listeners are bound and when a reload is done.
import Foundation
public import MailCore

/// Tells the service manager about state changes. Without `$NOTIFY_SOCKET` (not started by systemd) every call is
/// a no-op. The protocol is newline-separated `KEY=VALUE` pairs in one `AF_UNIX` datagram; a socket name starting
/// with `@` is in the abstract namespace (the `@` stands for a leading NUL byte).
public struct SystemdNotifier: Sendable {
    /// The socket path as given in the environment (nil: notifications are off).
    public let socketPath: String?

    /// From `$NOTIFY_SOCKET`.
    public init() {
        let path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"]
        socketPath = (path?.isEmpty ?? true) ? nil : path
    }

    public init(socketPath: String?) { self.socketPath = socketPath }

    /// `READY=1`: every listener is bound (systemd starts units ordered after this one only now).
    public func ready(status: String) throws(SystemdNotifyError) {
        try send(["READY=1", "STATUS=\(Self.oneLine(status))", "MAINPID=\(getpid())"])
    }

    /// `RELOADING=1` with the monotonic time, as systemd 253's `Type=notify-reload` wants; `ready` follows.
    public func reloading() throws(SystemdNotifyError) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
        try send(["RELOADING=1", "MONOTONIC_USEC=\(microseconds)"])
    }

    /// `STOPPING=1`: the drain has begun.
    public func stopping() throws(SystemdNotifyError) {
        try send(["STOPPING=1"])
    }

    /// `STATUS=…` alone (shown by `systemctl status`).
    public func status(_ text: String) throws(SystemdNotifyError) {
        try send(["STATUS=\(Self.oneLine(text))"])
    }

    /// Sends the assignments as one datagram.
    public func send(_ assignments: [String]) throws(SystemdNotifyError) {
        guard let socketPath else { return }
        let message = Array(assignments.joined(separator: "\n").utf8)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        let abstract = pathBytes.first == UInt8(ascii: "@")
        if abstract { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        // A file path needs room for its terminating NUL; an abstract name is exactly its bytes.
        guard pathBytes.count < capacity || (abstract && pathBytes.count <= capacity) else {
            throw .badSocket(socketPath, "the name is longer than a Unix socket address allows")
        }
        guard socketPath.hasPrefix("/") || abstract else {
            throw .badSocket(socketPath, "it is neither an absolute path nor an abstract name (@…)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathBytes.count + (abstract ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .sendFailed(socketPath, String(cString: strerror(errno))) }
        defer { close(fd) }
        let sent = message.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), socketAddress, length)
                }
            }
        }
        guard sent == message.count else { throw .sendFailed(socketPath, String(cString: strerror(errno))) }
    }

    /// A status is one line: newlines would start a new assignment.
    private static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}

/// A notification that could not be delivered (the service manager then times the start out; say why).
public enum SystemdNotifyError: MailGateError {
    case badSocket(String, String)
    case sendFailed(String, String)

    public var description: String {
        switch self {
        case .badSocket(let path, let why): "NOTIFY_SOCKET \(path) cannot be used: \(why)."
        case .sendFailed(let path, let why): "The notification to the service manager at \(path) failed: \(why)."
        }
    }
}
