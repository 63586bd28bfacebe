import Testing

@testable import GRPCTransport

/// Held by a handler: it lives exactly as long as the server's shared state does.
private final class Canary: Sendable {}

@Suite("server release")
struct ServerReleaseTests {
    @Test("a server that was started, served and shut down frees its loops and handlers")
    func stoppedServerIsFreed() async throws {
        weak var canary: Canary?
        do {
            let strong = Canary()
            canary = strong
            let handlers: [String: RPCHandler] = [
                "/x.Y/Echo": .unary { request, _, responder in
                    _ = strong
                    responder.succeed(request)
                }
            ]
            let path = temporarySocketPath("release")
            let server = GRPCServer(
                configuration: GRPCServerConfiguration(socketPath: path), handlers: handlers)
            try server.start()
            let client = try GRPCClientConnection(socketPath: path)
            #expect(try await client.unary(path: "/x.Y/Echo", request: [7]) == [7])
            client.close()
            server.shutdown()
        }
        #expect(canary == nil, "the stopped server's handlers are still referenced")
    }
}
