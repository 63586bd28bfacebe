import Dispatch
import Synchronization
import Testing

@testable import GRPCTransport

/// Collects what one bidirectional call received, and lets a test wait for it.
final class StreamInbox: Sendable {
    private struct State {
        var messages: [[UInt8]] = []
        var status: GRPCStatus?
    }

    private let state = Mutex(State())

    var onMessage: @Sendable ([UInt8]) -> Void {
        { message in self.state.withLock { $0.messages.append(message) } }
    }

    var onEnd: @Sendable (GRPCStatus) -> Void {
        { status in self.state.withLock { $0.status = status } }
    }

    var messages: [[UInt8]] { state.withLock { $0.messages } }
    var status: GRPCStatus? { state.withLock { $0.status } }

    /// Waits up to two seconds for `condition`; false when it never held.
    func wait(until condition: (StreamInbox) -> Bool) async -> Bool {
        for _ in 0..<400 {
            if condition(self) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition(self)
    }
}

/// Handlers of bidirectional methods, with what the server saw.
final class BidirectionalHandlers: Sendable {
    let ended = Atomic<Int>(0)
    let cancelled = Atomic<Int>(0)

    var all: [String: RPCHandler] {
        [
            // Answers each message at once with its bytes reversed; OK after the half-close.
            "/x.Y/Reverse": .bidirectionalStreaming { _, responder in
                responder.onCancel { self.cancelled.add(1, ordering: .relaxed) }
                return RequestStreamObserver(
                    onMessage: { responder.send($0.reversed()) },
                    onEnd: {
                        self.ended.add(1, ordering: .relaxed)
                        responder.finish(.ok)
                    })
            },
            // Refuses a message that starts with 0xFF, without waiting for the rest.
            "/x.Y/Picky": .bidirectionalStreaming { _, responder in
                RequestStreamObserver(
                    onMessage: { message in
                        if message.first == 0xFF {
                            responder.finish(GRPCStatus(code: .invalidArgument, message: "no 0xFF"))
                        } else {
                            responder.send(message)
                        }
                    },
                    onEnd: { responder.finish(.ok) })
            },
            "/x.Y/Echo": .unary { request, _, responder in responder.succeed(request) },
        ]
    }
}

@Suite("bidirectional streaming over a real Unix socket")
struct BidirectionalTests {
    @Test("each message is answered before the client half-closes")
    func answersAsMessagesArrive() async throws {
        let handlers = BidirectionalHandlers()
        let server = try RunningServer(handlers: handlers.all)
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }
        let inbox = StreamInbox()

        let stream = client.bidirectionalStream(
            path: "/x.Y/Reverse", onMessage: inbox.onMessage, onEnd: inbox.onEnd)
        stream.send([1, 2, 3])
        let first = await inbox.wait { $0.messages.count == 1 }
        stream.send([4, 5])
        let second = await inbox.wait { $0.messages.count == 2 }
        let endedBeforeClose = handlers.ended.load(ordering: .relaxed)
        stream.closeSend()
        let finished = await inbox.wait { $0.status != nil }

        #expect(first && second)
        #expect(endedBeforeClose == 0)
        #expect(inbox.messages == [[3, 2, 1], [5, 4]])
        #expect(finished)
        #expect(inbox.status?.code == .ok)
        #expect(handlers.ended.load(ordering: .relaxed) == 1)
    }

    @Test("a stream with no messages ends OK at the half-close")
    func emptyStream() async throws {
        let server = try RunningServer(handlers: BidirectionalHandlers().all)
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }
        let inbox = StreamInbox()

        let stream = client.bidirectionalStream(
            path: "/x.Y/Reverse", onMessage: inbox.onMessage, onEnd: inbox.onEnd)
        stream.closeSend()

        #expect(await inbox.wait { $0.status != nil })
        #expect(inbox.messages.isEmpty)
        #expect(inbox.status?.code == .ok)
    }

    @Test("the server may end the call with an error while the client is still sending")
    func serverEndsEarly() async throws {
        let server = try RunningServer(handlers: BidirectionalHandlers().all)
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }
        let inbox = StreamInbox()

        let stream = client.bidirectionalStream(
            path: "/x.Y/Picky", onMessage: inbox.onMessage, onEnd: inbox.onEnd)
        stream.send([7])
        stream.send([0xFF])
        stream.send([8])

        #expect(await inbox.wait { $0.status != nil })
        #expect(inbox.messages == [[7]])
        #expect(inbox.status?.code == .invalidArgument)
        // The connection carries on.
        #expect(try await client.unary(path: "/x.Y/Echo", request: [9]) == [9])
    }

    @Test("a client that resets the stream cancels the server side")
    func clientCancels() async throws {
        let handlers = BidirectionalHandlers()
        let server = try RunningServer(handlers: handlers.all)
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }
        let inbox = StreamInbox()

        let stream = client.bidirectionalStream(
            path: "/x.Y/Reverse", onMessage: inbox.onMessage, onEnd: inbox.onEnd)
        stream.send([1])
        _ = await inbox.wait { $0.messages.count == 1 }
        stream.cancel()

        #expect(await inbox.wait { $0.status != nil })
        #expect(inbox.status?.code == .cancelled)
        var seen = false
        for _ in 0..<400 where !seen {
            seen = handlers.cancelled.load(ordering: .relaxed) == 1
            if !seen { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(seen)
        #expect(handlers.ended.load(ordering: .relaxed) == 0)
    }

    @Test("a request message over the receive limit ends the call RESOURCE_EXHAUSTED")
    func oversizedMessage() async throws {
        let server = try RunningServer(handlers: BidirectionalHandlers().all) {
            $0.maxReceiveMessageBytes = 1024
        }
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }
        let inbox = StreamInbox()

        let stream = client.bidirectionalStream(
            path: "/x.Y/Reverse", onMessage: inbox.onMessage, onEnd: inbox.onEnd)
        stream.send([1])
        stream.send([UInt8](repeating: 2, count: 4096))

        #expect(await inbox.wait { $0.status != nil })
        #expect(inbox.messages == [[1]])
        #expect(inbox.status?.code == .resourceExhausted)
    }

    @Test("draining the server ends an open stream with UNAVAILABLE")
    func drainEndsStream() async throws {
        let server = try RunningServer(handlers: BidirectionalHandlers().all)
        let client = try server.client()
        defer { client.close() }
        let inbox = StreamInbox()

        let stream = client.bidirectionalStream(
            path: "/x.Y/Reverse", onMessage: inbox.onMessage, onEnd: inbox.onEnd)
        stream.send([1])
        _ = await inbox.wait { $0.messages.count == 1 }
        server.stop()

        #expect(await inbox.wait { $0.status != nil })
        #expect(inbox.status?.code == .unavailable)
    }
}

@Suite("the call completion observer")
struct CallObserverTests {
    /// What the observer was told, as (index, code) pairs.
    final class Seen: Sendable {
        let calls = Mutex<[(Int, Int32, Double)]>([])
    }

    @Test("every call is reported once with its path's index, status code and duration")
    func reportsCalls() async throws {
        let seen = Seen()
        let paths = ["/x.Y/Echo", "/x.Y/Throttled", "/x.Y/Count", "/x.Y/Slow"]
        let server = try RunningServer {
            $0.callObserver = CallCompletionObserver(
                methodIndex: { paths.firstIndex(of: $0) ?? 99 },
                completed: { index, code, seconds in
                    seen.calls.withLock { $0.append((index, code, seconds)) }
                })
        }
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        _ = try await client.unary(path: "/x.Y/Echo", request: [1])
        _ = try? await client.unary(path: "/x.Y/Throttled", request: [])
        try await client.serverStreaming(path: "/x.Y/Count", request: [3]) { _ in }
        _ = try? await client.unary(path: "/x.Y/Nope", request: [])
        _ = try? await client.unary(path: "/x.Y/Slow", request: [], timeout: .milliseconds(50))
        var calls: [(Int, Int32, Double)] = []
        for _ in 0..<2000 {
            calls = seen.calls.withLock { $0 }
            if calls.count >= 5 { break }
            try await Task.sleep(for: .milliseconds(5))
        }

        let pairs = calls.filter { $0.0 != 3 }.map { "\($0.0):\($0.1)" }.sorted()
        #expect(pairs == ["-1:12", "0:0", "1:14", "2:0"])
        // Whichever side's timer fires first decides: the server's deadline or the client's reset.
        let slow = try #require(calls.first { $0.0 == 3 })
        #expect(
            slow.1 == GRPCStatus.Code.deadlineExceeded.rawValue
                || slow.1 == GRPCStatus.Code.cancelled.rawValue)
        #expect(slow.2 >= 0.04 && slow.2 < 5)
    }
}
