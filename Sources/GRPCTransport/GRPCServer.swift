import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A gRPC server over HTTP/2 (h2c, prior knowledge) on a Unix socket, serving `[UInt8]` messages
/// to the handlers it was given.
///
/// Connections are spread over a few event-loop threads; a handler is called on the thread of its
/// connection and may answer there (the fast path) or later from any thread.
///
/// What the server decides by itself, before any handler runs: a method other than POST gets
/// HTTP 405, a content-type not starting with `application/grpc` HTTP 415, an unknown path
/// UNIMPLEMENTED, a malformed `grpc-timeout` INTERNAL (as grpc-go does, rather than silently
/// running without a deadline), a request whose length prefix exceeds the receive limit
/// RESOURCE_EXHAUSTED (decided from the prefix), a compressed message INTERNAL (no compression is
/// negotiated; a `grpc-encoding` other than identity is UNIMPLEMENTED), and a unary request with
/// zero, two or a truncated message INTERNAL. When the deadline passes before the handler
/// answers, the client gets DEADLINE_EXCEEDED and the later answer is dropped.
public final class GRPCServer: Sendable {
    private struct Running {
        var loops: [EventLoop]
        var contexts: [ServerLoopContext]
    }

    private enum State {
        case idle
        case running(Running)
        case stopped
    }

    private let configuration: GRPCServerConfiguration
    private let shared: ServerShared
    private let state = Mutex<State>(.idle)
    private let accepting = Atomic<Bool>(false)

    /// Creates a server; nothing listens until `start()`.
    /// - Parameters:
    ///   - configuration: the socket and limits.
    ///   - handlers: the served methods, keyed by path (`/package.Service/Method`).
    ///   - logger: receives one line per notable event; nil logs nothing.
    public init(
        configuration: GRPCServerConfiguration, handlers: [String: RPCHandler],
        logger: GRPCLogSink? = nil
    ) {
        self.configuration = configuration
        self.shared = ServerShared(configuration: configuration, handlers: handlers, log: logger)
    }

    /// Removes a stale socket file, binds, applies `socketMode`, listens and starts the loops.
    /// - Throws: `TransportError` naming the failed syscall and its errno; the path is then left
    ///   as it was, except for a stale socket file, which is gone.
    public func start() throws {
        try state.withLock { state throws(TransportError) in
            guard case .idle = state else {
                throw TransportError(
                    operation: "start", errno: EALREADY, detail: configuration.socketPath)
            }
            let listenFD = try Sockets.listen(
                path: configuration.socketPath, mode: configuration.socketMode)
            var loops: [EventLoop] = []
            var contexts: [ServerLoopContext] = []
            do throws(TransportError) {
                for index in 0..<max(1, configuration.eventLoopCount) {
                    let loop = try EventLoop(name: "grpc-server-\(index)")
                    let context = ServerLoopContext(loop: loop, shared: shared)
                    loop.shouldExit = { [unowned context] in
                        context.draining && context.connections.isEmpty
                    }
                    loops.append(loop)
                    contexts.append(context)
                }
                let acceptor = Acceptor(
                    fd: listenFD, contexts: contexts, allowedUIDs: configuration.allowedUIDs,
                    log: shared.log)
                contexts[0].acceptor = acceptor
                for loop in loops { try loop.start() }
                loops[0].execute { acceptor.register(on: loops[0]) }
            } catch {
                for loop in loops {
                    loop.stop()
                    loop.join()
                }
                contexts.first?.acceptor = nil
                _ = close(listenFD)
                removeSocketFile()
                throw error
            }
            state = .running(Running(loops: loops, contexts: contexts))
            accepting.store(true, ordering: .releasing)
        }
        shared.log?("grpc.server.listening path=\(configuration.socketPath)")
    }

    /// Refuses new connections, lets in-flight calls finish within the drain timeout, sends GOAWAY,
    /// closes every connection and removes the socket file. Returns when all of that is done.
    ///
    /// Server-streaming calls are told to cancel when draining starts. Must not be called from a
    /// handler running on one of the server's threads.
    public func shutdown() {
        let running = state.withLock { state -> Running? in
            defer { state = .stopped }
            if case .running(let running) = state { return running }
            return nil
        }
        accepting.store(false, ordering: .releasing)
        guard let running else { return }
        let timeout = configuration.drainTimeout
        let first = running.contexts[0]
        // The acceptor holds every context and the first context holds the acceptor: drop that
        // link once the acceptor is closed, or a stopped server (its loops' read buffers, the
        // nghttp2 callbacks) is never freed.
        first.loop.execute {
            first.acceptor?.close()
            first.acceptor = nil
        }
        for context in running.contexts {
            context.loop.execute { context.beginDrain(timeout: timeout) }
        }
        for loop in running.loops { loop.join() }
        removeSocketFile()
        shared.log?("grpc.server.stopped path=\(configuration.socketPath)")
    }

    /// True between a successful `start()` and the beginning of `shutdown()`.
    public var isAccepting: Bool { accepting.load(ordering: .acquiring) }

    private func removeSocketFile() {
        let path = configuration.socketPath
        guard !path.hasPrefix("@") else { return }
        var info = stat()
        if lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK {
            unlink(path)
        }
    }
}

/// Accepts connections on loop 0 and hands each to a loop, round robin.
final class Acceptor: LoopFDHandler, LoopTimer, @unchecked Sendable {
    let fd: Int32
    let contexts: [ServerLoopContext]
    let allowedUIDs: Set<UInt32>?
    let log: GRPCLogSink?
    private var next = 0
    private var loop: EventLoop?
    private var paused = false
    var timerIndex = -1
    var timerDeadline = ContinuousClock.now

    init(fd: Int32, contexts: [ServerLoopContext], allowedUIDs: Set<UInt32>?, log: GRPCLogSink?) {
        self.fd = fd
        self.contexts = contexts
        self.allowedUIDs = allowedUIDs
        self.log = log
    }

    func register(on loop: EventLoop) {
        self.loop = loop
        loop.register(fd, handler: self, events: Epoll.input)
    }

    /// Out of file descriptors: stop accepting for a moment instead of spinning on the
    /// listener, which stays readable while the connection waits in the backlog.
    private func pause(on loop: EventLoop) {
        paused = true
        loop.unregister(fd, handler: self)
        timerDeadline = ContinuousClock.now + .milliseconds(100)
        loop.schedule(self)
    }

    func timerFired() {
        guard let loop, paused else { return }
        paused = false
        loop.register(fd, handler: self, events: Epoll.input)
    }

    func close() {
        guard let loop else { return }
        loop.cancel(self)
        if !paused { loop.unregister(fd, handler: self) }
        _ = Glibc.close(fd)
        self.loop = nil
    }

    override func handleEvents(_ events: UInt32) {
        guard let loop else { return }
        // A bounded batch, so one loop turn cannot be monopolised by a connect storm.
        for _ in 0..<64 {
            let client = accept(fd, nil, nil)
            if client < 0 {
                let error = errno
                if error == EINTR || error == ECONNABORTED { continue }
                if error != EAGAIN {
                    log?("grpc.server.accept_failed errno=\(error)")
                }
                if error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM {
                    pause(on: loop)
                }
                return
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            Sockets.setNonBlocking(client)
            let uid = Sockets.peerUID(client)
            if let allowed = allowedUIDs, uid.map({ !allowed.contains($0) }) ?? true {
                log?("grpc.server.peer_refused uid=\(uid.map(String.init) ?? "unknown")")
                _ = Glibc.close(client)
                continue
            }
            let context = contexts[next % contexts.count]
            next &+= 1
            if context.loop === loop {
                context.adopt(fd: client, peerUID: uid)
            } else {
                context.loop.execute { context.adopt(fd: client, peerUID: uid) }
            }
        }
    }
}
