// OAuth: the HTTP reader's entry points for the fuzz targets (issue 13 point 4). `package`, not `public`: only
// this package's FuzzTargets use them; the product's API is unchanged.

/// The reader's two uses, callable from the package's fuzz targets (`HTTPMessageReader` itself stays internal).
package enum HTTPReaderFuzzing {
    /// Reads one response from `chunks` (the network's chunking), as the token endpoint client does.
    package static func fuzzResponse(_ chunks: [[UInt8]], limits: HTTPLimits = .tokenResponse) async
        -> Result<(status: Int, bodyCount: Int), OAuthError>
    {
        var reader = HTTPMessageReader(limits: limits, source: ChunkSource(chunks).next)
        do throws(OAuthError) {
            let response = try await reader.readResponse()
            return .success((response.status, response.body.count))
        } catch {
            return .failure(error)
        }
    }

    /// Reads one request head from `chunks`, as the loopback redirect receiver does.
    package static func fuzzRequestHead(_ chunks: [[UInt8]], limits: HTTPLimits = .redirectRequest) async
        -> Result<(path: String, headerCount: Int)?, OAuthError>
    {
        var reader = HTTPMessageReader(limits: limits, source: ChunkSource(chunks).next)
        do throws(OAuthError) {
            return .success(try await reader.readRequestHead().map { ($0.path, $0.headers.count) })
        } catch {
            return .failure(error)
        }
    }
}

/// Hands out prepared chunks, then the end of the stream.
private final class ChunkSource: @unchecked Sendable {
    private var chunks: [[UInt8]]
    private var index = 0

    init(_ chunks: [[UInt8]]) { self.chunks = chunks }

    func next() async throws(OAuthError) -> [UInt8]? {
        guard index < chunks.count else { return nil }
        defer { index += 1 }
        return chunks[index]
    }
}
