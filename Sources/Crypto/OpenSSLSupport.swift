// Crypto: small helpers shared by the OpenSSL wrappers (error stack, pointers); TLS uses the error stack too.

internal import COpenSSL

#if canImport(Glibc)
    internal import Glibc
#endif

/// ERR_SYSTEM_FLAG from err.h (a cast expression, so Swift does not import it): marks errno-based entries.
private let systemErrorFlag: UInt = 0x8000_0000

/// Reads and empties OpenSSL's thread-local error queue, giving one readable line.
///
/// Each entry becomes "library: reason (extra data)"; at most `maximumEntries` are kept so a
/// pathological queue cannot grow a log line without bound. Returns `fallback` when the queue was empty.
package func drainOpenSSLErrors(fallback: String, maximumEntries: Int = 6) -> String {
    var parts: [String] = []
    while true {
        var data: UnsafePointer<CChar>? = nil
        var flags: Int32 = 0
        let code = ERR_get_error_all(nil, nil, nil, &data, &flags)
        if code == 0 { break }
        guard parts.count < maximumEntries else { continue }
        var text = ""
        if let library = ERR_lib_error_string(code) { text += String(cString: library) + ": " }
        if code & systemErrorFlag != 0 {
            // A system error carries errno in its low bits and has no reason string of its own.
            text += String(cString: strerror(Int32(truncatingIfNeeded: code & ~systemErrorFlag)))
        } else if let reason = ERR_reason_error_string(code) {
            text += String(cString: reason)
        } else {
            text += "error \(code)"
        }
        if let data, flags & ERR_TXT_STRING != 0, data.pointee != 0 {
            text += " (" + String(cString: data) + ")"
        }
        if !parts.contains(text) { parts.append(text) }
    }
    return parts.isEmpty ? fallback : parts.joined(separator: "; ")
}

/// Calls `body` with a pointer that is never nil, even for an empty array (some OpenSSL calls reject NULL
/// even with a length of zero), and the array's count.
func withNonNullBytes<Result, Failure: Error>(
    _ bytes: [UInt8], _ body: (UnsafePointer<UInt8>, Int) throws(Failure) -> Result
) throws(Failure) -> Result {
    if bytes.isEmpty {
        var zero: UInt8 = 0
        return try withUnsafePointer(to: &zero) { (pointer) throws(Failure) -> Result in try body(pointer, 0) }
    }
    return try bytes.withUnsafeBufferPointer { (buffer) throws(Failure) -> Result in
        try body(buffer.baseAddress!, buffer.count)
    }
}
