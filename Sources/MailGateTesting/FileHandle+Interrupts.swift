// MailGateTesting: reading a child's pipe without trapping on EINTR.
public import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension FileHandle {
    /// Everything up to end of file. swift-corelibs-foundation's `readDataToEndOfFile()` and `availableData` trap
    /// (`try!`) when read(2) is interrupted by a signal (EINTR), which took down a whole test run once; this retries.
    public func readAllRetryingInterrupts() -> Data {
        var data = Data()
        while let chunk = readChunkRetryingInterrupts(), !chunk.isEmpty { data.append(chunk) }
        return data
    }

    /// What one read(2) returns (blocking until some bytes or end of file): empty at end of file, nil on an error
    /// other than EINTR.
    public func readChunkRetryingInterrupts(maximum: Int = 65_536) -> Data? {
        var buffer = [UInt8](repeating: 0, count: maximum)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fileDescriptor, $0.baseAddress, maximum) }
            if count >= 0 { return Data(buffer[0..<count]) }
            if errno != EINTR { return nil }
        }
    }
}
