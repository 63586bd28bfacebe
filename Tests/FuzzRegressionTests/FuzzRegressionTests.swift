import Foundation
import FuzzTargets
import Testing

/// Replays every committed fuzz input (the minimized corpus and each crash found) through the
/// entry point its fuzzer used. Each directory must hold inputs, so a corpus that was lost or
/// never seeded fails here rather than passing with nothing replayed.
@Suite("Fuzz inputs replay without a crash or a broken promise")
struct FuzzRegressionTests {
    /// `fuzz/` at the repository root, found from this file's path.
    static let fuzzRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz")

    static func replay(
        _ target: String, _ entry: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> Int {
        let directory = fuzzRoot.appendingPathComponent(target)
        let files = FuzzReplay.inputs(under: [directory.path])
        try #require(!files.isEmpty, "no inputs under \(directory.path)")
        for file in files {
            let bytes = [UInt8](try Data(contentsOf: file))
            do {
                try bytes.withUnsafeBytes { (raw) throws in
                    try entry(raw)
                }
            } catch {
                Issue.record("\(file.lastPathComponent): \(error)")
            }
        }
        return files.count
    }

    @Test("every provider ID input parses to a stable key or a short, clean error")
    func providerIDs() throws {
        #expect(try Self.replay("FuzzProviderID", FuzzEntryPoints.providerID) > 0)
    }

    @Test("every ARM body input decodes or is refused, never crashing or inventing records")
    func armBodies() throws {
        #expect(try Self.replay("FuzzARMDecoder", FuzzEntryPoints.armDecoder) > 0)
    }

    @Test("every gRPC byte stream input frames and decodes consistently")
    func grpcMessages() throws {
        #expect(try Self.replay("FuzzGRPCMessage", FuzzEntryPoints.grpcMessages) > 0)
    }
}
