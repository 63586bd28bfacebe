import Dispatch
import Synchronization
import Testing

@testable import GRPCTransport

#if canImport(Glibc)
    import Glibc
#endif

@Suite("calls over a real Unix socket")
struct EndToEndTests {
    @Test("an echo call returns the request bytes")
    func echo() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        let reply = try await client.unary(path: "/x.Y/Echo", request: Array("ping".utf8))
        let empty = try await client.unary(path: "/x.Y/Echo", request: [])
        let large = [UInt8](repeating: 0xAB, count: 300_000)
        let largeReply = try await client.unary(path: "/x.Y/Echo", request: large)

        #expect(reply == Array("ping".utf8))
        #expect(empty == [])
        #expect(largeReply == large)
    }

    @Test("the handler sees the path, the peer uid and the deadline")
    func context() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        let reply = try await client.unary(path: "/x.Y/Peer", request: [], timeout: .seconds(5))

        #expect(String(decoding: reply, as: UTF8.self) == "/x.Y/Peer uid=\(getuid()) deadline=true")
    }

    @Test("an unknown method answers UNIMPLEMENTED")
    func unimplemented() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        await #expect(throws: GRPCStatus(code: .unimplemented, message: "unknown method /x.Y/Nope"))
        {
            try await client.unary(path: "/x.Y/Nope", request: [1])
        }
        // The connection stays usable after the error.
        #expect(try await client.unary(path: "/x.Y/Echo", request: [2]) == [2])
    }

    @Test("a 5 MiB request answers RESOURCE_EXHAUSTED")
    func tooLarge() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        let request = [UInt8](repeating: 1, count: 5 * 1024 * 1024)
        let error = await #expect(throws: GRPCStatus.self) {
            try await client.unary(path: "/x.Y/Echo", request: request)
        }

        #expect(error?.code == .resourceExhausted)
        #expect(try await client.unary(path: "/x.Y/Echo", request: [3]) == [3])
    }

    @Test("a slow handler past a short deadline answers DEADLINE_EXCEEDED from the server")
    func deadline() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        let start = ContinuousClock.now
        let error = await #expect(throws: GRPCStatus.self) {
            try await client.unary(path: "/x.Y/Slow", request: [1], timeout: .milliseconds(100))
        }
        let elapsed = ContinuousClock.now - start

        #expect(error?.code == .deadlineExceeded)
        // The handler answers after 10 s: an error well before that came from the deadline.
        #expect(elapsed < .seconds(8))
        // The late answer is ignored and the connection keeps working.
        try await Task.sleep(for: .milliseconds(400))
        #expect(try await client.unary(path: "/x.Y/Echo", request: [4]) == [4])
    }

    @Test("200 concurrent calls answered late from other threads all get their own answer")
    func concurrentLateAnswers() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        let results = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            for index in 0..<200 {
                group.addTask {
                    let request = Array("call-\(index)".utf8)
                    return (index, try await client.unary(path: "/x.Y/LateEcho", request: request))
                }
            }
            var collected: [Int: [UInt8]] = [:]
            for try await (index, reply) in group { collected[index] = reply }
            return collected
        }

        #expect(results.count == 200)
        for index in 0..<200 { #expect(results[index] == Array("call-\(index)".utf8)) }
    }

    @Test("a server stream delivers every message in order, then OK")
    func serverStream() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }
        let received = Mutex<[[UInt8]]>([])

        try await client.serverStreaming(path: "/x.Y/Count", request: [5]) { message in
            received.withLock { $0.append(message) }
        }
        try await client.serverStreaming(path: "/x.Y/Count", request: [0]) { _ in
            Issue.record("an empty stream delivered a message")
        }

        #expect(received.withLock { $0 } == [[0], [1], [2], [3], [4]])
    }

    @Test("a request with a non-gRPC content-type answers HTTP 415")
    func wrongContentType() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        let (httpStatus, result) = await client.rawUnary(
            path: "/x.Y/Echo", request: [1], contentType: "application/json")

        #expect(httpStatus == 415)
        #expect(throws: GRPCStatus.self) { try result.get() }
    }

    @Test("a length prefix that promises more than arrives answers INTERNAL")
    func lyingPrefix() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        let short = await client.rawUnary(
            path: "/x.Y/Echo", request: [0, 0, 0, 0, 9, 1, 2], unframed: true)
        let compressed = await client.rawUnary(
            path: "/x.Y/Echo", request: [1, 0, 0, 0, 1, 7], unframed: true)
        let twoMessages = await client.rawUnary(
            path: "/x.Y/Echo", request: [0, 0, 0, 0, 1, 7, 0, 0, 0, 0, 1, 8], unframed: true)
        let noMessage = await client.rawUnary(path: "/x.Y/Echo", request: [], unframed: true)

        for (name, outcome) in [
            ("short", short), ("compressed", compressed), ("two", twoMessages), ("none", noMessage),
        ] {
            #expect(outcome.httpStatus == 200, "\(name)")
            guard case .failure(let status) = outcome.result else {
                Issue.record("\(name) succeeded")
                continue
            }
            #expect(status.code == .internalError, "\(name): \(status)")
        }
    }

    @Test("an error carries its percent-encoded message and the retry pushback trailer")
    func pushback() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        let error = await #expect(throws: GRPCStatus.self) {
            try await client.unary(path: "/x.Y/Throttled", request: [])
        }

        #expect(error?.code == .unavailable)
        #expect(error?.message == "throttled: 100% busy, réessayez")
        #expect(error?.retryPushbackMilliseconds == 1500)
    }

    @Test("shutdown lets a call in flight finish, then removes the socket")
    func shutdownDrains() async throws {
        let server = try RunningServer()
        let client = try server.client()
        defer { client.close() }
        let started = Mutex<Result<[UInt8], GRPCStatus>?>(nil)

        client.startUnary(path: "/x.Y/Hold", request: [7], timeout: nil) { result in
            started.withLock { $0 = result }
        }
        try await Task.sleep(for: .milliseconds(50))
        let shutdownStart = ContinuousClock.now
        server.stop()
        let shutdownTook = ContinuousClock.now - shutdownStart
        try await Task.sleep(for: .milliseconds(50))

        let result = try #require(started.withLock { $0 })
        #expect(try result.get() == Array("held".utf8) + [7])
        #expect(shutdownTook < .seconds(2))
        #expect(!fileExists(server.path))
        #expect(!server.server.isAccepting)
        await #expect(throws: GRPCStatus.self) {
            try await client.unary(path: "/x.Y/Echo", request: [1])
        }
    }

    @Test("shutdown cancels an endless server stream and still completes")
    func shutdownCancelsStreams() async throws {
        let server = try RunningServer()
        let client = try server.client()
        defer { client.close() }
        let outcome = Mutex<GRPCStatus?>(nil)
        let done = Atomic<Bool>(false)

        let task = Task {
            do throws(GRPCStatus) {
                try await client.serverStreaming(path: "/x.Y/Forever", request: []) { _ in }
                outcome.withLock { $0 = .ok }
            } catch {
                outcome.withLock { $0 = error }
            }
            done.store(true, ordering: .releasing)
        }
        try await Task.sleep(for: .milliseconds(100))
        server.stop()
        await task.value

        let finished = done.load(ordering: .acquiring)
        #expect(finished)
        #expect(outcome.withLock { $0 }?.code == .cancelled)
    }

    @Test("a client disappearing mid-call does not hurt the server")
    func clientVanishes() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let doomed = try server.client()
        doomed.startUnary(path: "/x.Y/Hold", request: [], timeout: nil) { _ in }
        try await Task.sleep(for: .milliseconds(20))
        doomed.close()
        try await Task.sleep(for: .milliseconds(400))

        let client = try server.client()
        defer { client.close() }
        #expect(try await client.unary(path: "/x.Y/Echo", request: [9]) == [9])
    }

    @Test("a client that resets the stream marks the unary responder cancelled")
    func clientResetUnary() async throws {
        let held = Mutex<UnaryResponder?>(nil)
        let handlers: [String: RPCHandler] = [
            "/x.Y/Park": .unary { _, _, responder in held.withLock { $0 = responder } }
        ]
        let server = try RunningServer(handlers: handlers)
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        let task = Task { () async -> GRPCStatus? in
            do throws(GRPCStatus) {
                _ = try await client.unary(path: "/x.Y/Park", request: [1])
                return nil
            } catch {
                return error
            }
        }
        try await waitUntil { held.withLock { $0 != nil } }
        let responder = try #require(held.withLock { $0 })
        #expect(!responder.isCancelled)
        task.cancel()
        let outcome = await task.value

        #expect(outcome == GRPCStatus(code: .cancelled, message: "cancelled by the caller"))
        try await waitUntil { responder.isCancelled }
        responder.succeed([2])  // ignored, no crash
    }

    @Test("a client that resets a server stream fires onCancel")
    func clientResetStream() async throws {
        let fired = Atomic<Int>(0)
        let handlers: [String: RPCHandler] = [
            "/x.Y/Watch": .serverStreaming { _, _, responder in
                responder.send([1])
                responder.onCancel { fired.add(1, ordering: .relaxed) }
            }
        ]
        let server = try RunningServer(handlers: handlers)
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }
        let received = Atomic<Int>(0)

        let task = Task {
            do throws(GRPCStatus) {
                try await client.serverStreaming(path: "/x.Y/Watch", request: []) { _ in
                    received.add(1, ordering: .relaxed)
                }
            } catch {}
        }
        try await waitUntil { received.load(ordering: .relaxed) == 1 }
        task.cancel()
        await task.value

        try await waitUntil { fired.load(ordering: .relaxed) == 1 }
        try await Task.sleep(for: .milliseconds(50))
        let firedCount = fired.load(ordering: .relaxed)
        #expect(firedCount == 1)
    }
}

/// Polls `condition` for up to ten seconds: generous, since other suites running at the same
/// time can hold the concurrency pool's threads for seconds, and a met condition ends it at once.
func waitUntil(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        if ContinuousClock.now > deadline {
            Issue.record("condition not met within 10 s")
            return
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}
