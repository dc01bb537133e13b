// FuzzTargets: how one fuzz input is read — a control byte, then the bytes a peer would send, cut into chunks
// the way a network might cut them.

/// One fuzz input: `control` picks the harness's choices (chunking, answers, options), `payload` is what a peer
/// sends. The first byte is the control byte so that corpus files stay readable protocol text after it.
struct FuzzInput {
    let control: UInt8
    let payload: [UInt8]

    init(_ data: [UInt8]) {
        control = data.first ?? 0
        payload = Array(data.dropFirst())
    }

    /// Whether option `bit` (0…7) of the control byte is set.
    func option(_ bit: Int) -> Bool { control & (1 << bit) != 0 }

    /// The payload in chunks of 1…64 bytes chosen by a generator seeded from the control byte and the length,
    /// so the same input always splits the same way (a crash reproduces) and different inputs split differently.
    var chunks: [[UInt8]] {
        var generator = SplitMix(seed: UInt64(control) &* 0x9E37_79B9 &+ UInt64(payload.count))
        var result: [[UInt8]] = []
        var index = 0
        while index < payload.count {
            let size = option(7) ? 1 : Int(generator.next() % 64) + 1
            let end = min(payload.count, index + size)
            result.append(Array(payload[index..<end]))
            index = end
        }
        return result
    }

    /// The payload's lines without their line ends (CRLF or LF), for the one-line parsers.
    var lines: [[UInt8]] {
        payload.split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            line.last == 0x0D ? Array(line.dropLast()) : Array(line)
        }
    }
}

/// A small deterministic generator (SplitMix64): the chunking must not depend on a random source.
struct SplitMix {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A violated property: stops the fuzzer with the target's name and a sentence, so the input is kept as a crash.
func require(_ condition: @autoclosure () -> Bool, _ target: FuzzTarget, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz target \(target.rawValue): \(message())") }
}

/// A loop that must make progress: at most `limit` rounds, else the machine is spinning on its input.
struct ProgressGuard {
    private var rounds = 0
    let limit: Int
    let target: FuzzTarget

    init(_ target: FuzzTarget, inputSize: Int) {
        self.target = target
        limit = 8 * inputSize + 256
    }

    mutating func tick() {
        rounds += 1
        require(rounds <= limit, target, "no progress after \(limit) rounds on \(limit / 8) input bytes")
    }
}

/// What the driver does after one action.
enum FuzzStep<Action> {
    /// Go on, with these actions answered first (the machine's reply to the harness's answer).
    case next([Action])
    /// The machine is done with the connection (closed or handed over).
    case stop
}

/// Feeds a server-side machine the input's chunks and works off its actions in order, as a session would.
/// Returns the chunks not fed yet when `perform` stopped (empty when every chunk was fed).
@discardableResult
func driveMachine<Action>(
    _ input: FuzzInput, _ target: FuzzTarget, connected: [Action], received: ([UInt8]) -> [Action],
    perform: (Action) -> FuzzStep<Action>
) -> ArraySlice<[UInt8]> {
    var progress = ProgressGuard(target, inputSize: input.payload.count)
    var actions = connected[...]
    var chunks = input.chunks[...]
    while true {
        while let action = actions.popFirst() {
            progress.tick()
            switch perform(action) {
            case .next(let followUps): actions = followUps[...] + actions
            case .stop: return chunks
            }
        }
        guard let chunk = chunks.popFirst() else { return chunks }
        actions += received(chunk)
    }
}
