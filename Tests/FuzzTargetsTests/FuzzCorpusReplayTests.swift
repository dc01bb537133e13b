// FuzzTargetsTests: the fuzz targets in the normal test run — every seed and every kept crash input replayed
// (a crash found by `scripts/fuzz` is copied to Fuzz/regressions/TARGET/ and stays a test from then on), plus a
// short deterministic mutation run per target so the properties are exercised even without libFuzzer.
import Foundation
import FuzzTargets
import Testing

/// Serialized, and yielding after every input: the targets are pure CPU work, and Swift Testing runs tests on the
/// cooperative pool (two threads on a 2-core machine); eight of them at once starved the rest of the suite's
/// timers and `eventually` loops for seconds.
@Suite("Fuzz targets: corpus and regressions replayed, deterministic mutations", .serialized)
struct FuzzCorpusReplayTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func inputs(_ kind: String, _ target: FuzzTarget) -> [(name: String, bytes: [UInt8])] {
        let folder = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().compactMap { name in
            guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(name).path) else { return nil }
            return (name, [UInt8](data))
        }
    }

    @Test("every target has a seed corpus, and every seed runs clean", arguments: FuzzTarget.allCases)
    func seeds(target: FuzzTarget) async {
        let seeds = Self.inputs("corpus", target)
        #expect(seeds.count >= 3, "Fuzz/corpus/\(target.rawValue) holds \(seeds.count) seeds")
        for seed in seeds {
            await target.check(seed.bytes)
            await Task.yield()
        }
    }

    @Test("every kept crash input runs clean (the fix stays)", arguments: FuzzTarget.allCases)
    func regressions(target: FuzzTarget) async {
        for input in Self.inputs("regressions", target) {
            await target.check(input.bytes)
            await Task.yield()
        }
    }

    /// Byte flips, insertions, deletions, splices and control-byte changes of the seeds: 1,000 inputs per target,
    /// the same every run.
    @Test("1,000 deterministic mutations of the seeds per target run clean", arguments: FuzzTarget.allCases)
    func mutations(target: FuzzTarget) async {
        let seeds = Self.inputs("corpus", target).map(\.bytes)
        guard !seeds.isEmpty else { return }
        var state: UInt64 = 0x5EED_0000 &+ UInt64(target.rawValue.utf8.count)
        func next() -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(truncatingIfNeeded: state >> 33)
        }
        let interesting: [UInt8] = [0x00, 0x0A, 0x0D, 0x20, 0x2E, 0x22, 0x5C, 0x7B, 0x7D, 0x2B, 0x26, 0x2D, 0xFF, 0x80]
        for round in 0..<1_000 {
            var bytes = seeds[round % seeds.count]
            for _ in 0..<(1 + next() % 4) {
                switch next() % 6 {
                case 0 where !bytes.isEmpty: bytes[next() % bytes.count] = interesting[next() % interesting.count]
                case 1: bytes.insert(interesting[next() % interesting.count], at: bytes.isEmpty ? 0 : next() % bytes.count)
                case 2 where bytes.count > 1: bytes.remove(at: next() % bytes.count)
                case 3:
                    let other = seeds[next() % seeds.count]
                    let cut = bytes.isEmpty ? 0 : next() % bytes.count
                    bytes = Array(bytes[..<cut]) + other.suffix(max(0, other.count - (other.isEmpty ? 0 : next() % other.count)))
                case 4 where !bytes.isEmpty: bytes[0] = UInt8(truncatingIfNeeded: next())
                default:
                    let digits = Array(String(next() % 100_000).utf8)
                    bytes += [0x7B] + digits + [0x7D, 0x0D, 0x0A]
                }
            }
            await target.check(bytes)
            await Task.yield()
        }
    }
}
