// Gateway: serve raises its descriptor limit at start: every IMAP session pair holds two sockets, so the usual soft
// limit of 1,024 would stop a gateway at ~500 clients long before memory or CPU does.
import Foundation
import Logging

extension GatewayServer {
    /// Raises RLIMIT_NOFILE's soft limit to the hard limit (which an unprivileged process may always do) and logs
    /// both. Returns the soft limit in force afterwards. Never lowers it; a failure is logged and serve goes on.
    @discardableResult
    func raiseDescriptorLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            logger.warning("the descriptor limit could not be read: \(String(cString: strerror(errno)))")
            return 0
        }
        let before = UInt64(limit.rlim_cur)
        guard limit.rlim_cur < limit.rlim_max else {
            logger.notice("descriptor limit \(before) (already the hard limit): about \(before / 2) IMAP session pairs")
            return before
        }
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 else {
            logger.warning(
                "the descriptor limit could not be raised from \(before) to \(UInt64(limit.rlim_max)): \(String(cString: strerror(errno)))")
            return before
        }
        let after = UInt64(raised.rlim_cur)
        logger.notice("descriptor limit raised from \(before) to \(after) (the hard limit): about \(after / 2) IMAP session pairs")
        return after
    }
}
