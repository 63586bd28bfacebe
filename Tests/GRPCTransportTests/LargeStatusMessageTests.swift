import Dispatch
import Synchronization
import Testing

@testable import GRPCTransport

/// Handlers whose status messages are far larger than any client accepts in a header block.
private func largeMessageHandlers(_ message: String) -> [String: RPCHandler] {
    [
        "/x.Y/FailHuge": .unary { _, _, responder in
            responder.fail(GRPCStatus(code: .invalidArgument, message: message))
        },
        "/x.Y/StreamThenFailHuge": .serverStreaming { _, _, responder in
            DispatchQueue.global().async {
                responder.send([7])
                responder.finish(GRPCStatus(code: .notFound, message: message))
            }
        },
    ]
}

@Suite("status messages too large for a header block")
struct LargeStatusMessageTests {
    @Test("a unary failure with a 100 KB message reaches the client promptly, truncated")
    func unaryHugeMessage() async throws {
        let message = String(repeating: "z", count: 100_000)
        let server = try RunningServer(handlers: largeMessageHandlers(message))
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        // A trailer the client never gets would end this call in DEADLINE_EXCEEDED instead.
        let error = await #expect(throws: GRPCStatus.self) {
            try await client.unary(path: "/x.Y/FailHuge", request: [], timeout: .seconds(5))
        }

        #expect(error?.code == .invalidArgument)
        #expect(error?.message == String(repeating: "z", count: 1024) + "…")
    }

    @Test("a stream ending with a 100 KB multi-byte message is cut on a character boundary")
    func streamingHugeMessage() async throws {
        // "€" is three UTF-8 bytes: 1024 bytes would split the 342nd, so 341 are kept.
        let message = String(repeating: "€", count: 34_000)
        let server = try RunningServer(handlers: largeMessageHandlers(message))
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        // This call takes no deadline; closing the connection bounds a hang to 5 s, and ends the
        // call in UNAVAILABLE rather than the handler's NOT_FOUND.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(5))
            client.close()
        }
        defer { watchdog.cancel() }
        let received = Mutex<[[UInt8]]>([])
        let error = await #expect(throws: GRPCStatus.self) {
            try await client.serverStreaming(path: "/x.Y/StreamThenFailHuge", request: []) {
                message in received.withLock { $0.append(message) }
            }
        }

        #expect(received.withLock { $0 } == [[7]])
        #expect(error?.code == .notFound)
        #expect(error?.message == String(repeating: "€", count: 341) + "…")
    }

    @Test("a message within the limit goes out whole")
    func shortMessageUntouched() {
        let exact = String(repeating: "é", count: 512)
        #expect(PercentEncoding.truncated(exact) == exact)
        #expect(PercentEncoding.truncated(exact + "x") == exact + "…")
    }
}
