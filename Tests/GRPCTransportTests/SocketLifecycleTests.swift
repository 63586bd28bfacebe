import Testing

@testable import GRPCTransport

#if canImport(Glibc)
    import Glibc
#endif

@Suite("socket lifecycle")
struct SocketLifecycleTests {
    @Test("a stale socket file from a previous run is replaced")
    func staleSocket() async throws {
        let path = temporarySocketPath("stale")
        let staleFD = try Sockets.listen(path: path, mode: 0o600)
        _ = close(staleFD)  // leaves the file behind, as a crashed process would
        #expect(fileExists(path))

        let server = try RunningServer(path: path)
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        #expect(try await client.unary(path: "/x.Y/Echo", request: [1]) == [1])
    }

    @Test("a path holding a regular file is refused and the file is left alone")
    func notASocket() throws {
        let path = temporarySocketPath("file")
        let file = fopen(path, "w")
        fputs("keep me", file)
        fclose(file)
        defer { unlink(path) }

        let server = GRPCServer(
            configuration: GRPCServerConfiguration(socketPath: path), handlers: TestHandlers.all())
        let error = #expect(throws: TransportError.self) { try server.start() }

        #expect(error?.description.contains("not a socket") == true)
        var info = stat()
        #expect(lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG && info.st_size == 7)
        #expect(!server.isAccepting)
    }

    @Test("the socket file gets the configured mode", arguments: [UInt32(0o600), 0o660])
    func mode(mode: UInt32) throws {
        let server = try RunningServer { $0.socketMode = mode }
        defer { server.stop() }

        var info = stat()
        #expect(lstat(server.path, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFSOCK)
        #expect(UInt32(info.st_mode) & 0o777 == mode)
        #expect(server.server.isAccepting)
    }

    @Test("an abstract socket serves calls and leaves no file behind")
    func abstractSocket() async throws {
        let name = "@grpct-abstract-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let server = try RunningServer(path: name)
        let client = try server.client()

        let reply = try await client.unary(path: "/x.Y/Echo", request: [5])
        client.close()
        server.stop()

        #expect(reply == [5])
        #expect(!fileExists(name))
        #expect(throws: TransportError.self) { try GRPCClientConnection(socketPath: name) }
    }

    @Test("the socket is gone after shutdown and connecting then fails")
    func removedOnShutdown() throws {
        let server = try RunningServer()
        #expect(fileExists(server.path))

        server.stop()

        #expect(!fileExists(server.path))
        #expect(throws: TransportError.self) { try GRPCClientConnection(socketPath: server.path) }
    }

    @Test("a peer whose uid is not allowed is disconnected and logged")
    func allowedUIDs() async throws {
        let server = try RunningServer { $0.allowedUIDs = [getuid() &+ 12345] }
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }

        let error = await #expect(throws: GRPCStatus.self) {
            try await client.unary(path: "/x.Y/Echo", request: [1], timeout: .seconds(2))
        }

        #expect(error?.code == .unavailable)
        #expect(server.log.all.contains { $0.contains("peer_refused uid=\(getuid())") })
    }

    @Test("a path too long for sockaddr_un is a clear error")
    func longPath() {
        let path = "/tmp/" + String(repeating: "x", count: 200)
        let server = GRPCServer(
            configuration: GRPCServerConfiguration(socketPath: path), handlers: [:])
        #expect(throws: TransportError.self) { try server.start() }
    }
}
