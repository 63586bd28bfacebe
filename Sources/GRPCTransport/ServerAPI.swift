/// What a handler knows about the call it serves.
public struct CallContext: Sendable {
    /// The method path, `/package.Service/Method`.
    public let path: String
    /// When the client stops waiting, from `grpc-timeout`; nil when it sent none.
    public let deadline: ContinuousClock.Instant?
    /// The uid of the peer process (SO_PEERCRED of the connection), when the kernel told us.
    public let peerUID: UInt32?

    /// Creates a context; the server builds these, tests may too.
    public init(path: String, deadline: ContinuousClock.Instant?, peerUID: UInt32?) {
        self.path = path
        self.deadline = deadline
        self.peerUID = peerUID
    }
}

/// The code that serves one method.
public enum RPCHandler: Sendable {
    /// One request, one response: answer through the responder exactly once, from any thread.
    case unary(
        @Sendable (_ request: [UInt8], _ context: CallContext, _ responder: UnaryResponder) -> Void)
    /// One request, a stream of responses ended by a status.
    case serverStreaming(
        @Sendable (_ request: [UInt8], _ context: CallContext, _ responder: StreamResponder) -> Void
    )
    /// Messages both ways: called as soon as the request headers arrive, before any message, on
    /// the connection's thread. The returned observer then sees each request message as it
    /// arrives and the client's half-close; answers go through the responder at any time.
    case bidirectionalStreaming(
        @Sendable (_ context: CallContext, _ responder: StreamResponder) -> RequestStreamObserver)
}

/// Receives the request messages of a bidirectional call, in order, on the connection's thread.
///
/// Neither closure may block: each runs on the event loop serving the connection.
public struct RequestStreamObserver: Sendable {
    /// One whole request message.
    public var onMessage: @Sendable (_ message: [UInt8]) -> Void
    /// The client half-closed: no more messages will come. Not called when the call was
    /// cancelled or failed first.
    public var onEnd: @Sendable () -> Void

    /// An observer made of the two closures.
    public init(
        onMessage: @escaping @Sendable (_ message: [UInt8]) -> Void,
        onEnd: @escaping @Sendable () -> Void
    ) {
        self.onMessage = onMessage
        self.onEnd = onEnd
    }
}

/// Told about every finished call, for metrics, without knowing what the calls mean.
///
/// `methodIndex` is asked once per served path when the server is made; its answer is what
/// `completed` later receives for calls to that path (-1 for a path that is not served).
/// `completed` runs on a connection's thread once per call that got a stream (including calls
/// refused before a handler ran), with the gRPC status code sent, or CANCELLED when the client
/// went away first, and the seconds from the request headers to the stream's end. It must be
/// cheap and must not block.
public struct CallCompletionObserver: Sendable {
    /// Maps a served path to the index `completed` receives.
    public var methodIndex: @Sendable (_ path: String) -> Int
    /// Called once per finished call.
    public var completed: @Sendable (_ methodIndex: Int, _ code: Int32, _ seconds: Double) -> Void

    /// An observer made of the two closures.
    public init(
        methodIndex: @escaping @Sendable (_ path: String) -> Int,
        completed: @escaping @Sendable (_ methodIndex: Int, _ code: Int32, _ seconds: Double)
            -> Void
    ) {
        self.methodIndex = methodIndex
        self.completed = completed
    }
}

/// Receives the server's log lines (one line per call, no trailing newline); never stdout.
public typealias GRPCLogSink = @Sendable (String) -> Void

/// How a server listens and what it accepts.
public struct GRPCServerConfiguration: Sendable {
    /// `/path/to.sock` for a socket file, `@name` for the Linux abstract namespace.
    public var socketPath: String
    /// The permission bits given to a socket file after bind.
    public var socketMode: UInt32 = 0o600
    /// A request message whose length prefix exceeds this is refused with RESOURCE_EXHAUSTED.
    public var maxReceiveMessageBytes: Int = 4 * 1024 * 1024
    /// Advertised in SETTINGS_MAX_CONCURRENT_STREAMS.
    public var maxConcurrentStreams: UInt32 = 1024
    /// Threads serving connections; each connection belongs to one of them.
    public var eventLoopCount: Int = 2
    /// How long `shutdown()` lets in-flight calls finish before closing connections anyway.
    public var drainTimeout: Duration = .seconds(25)
    /// Peer uids allowed to connect; nil lets anyone who can open the socket in.
    public var allowedUIDs: Set<UInt32>? = nil
    /// Told about every finished call; nil costs nothing per call.
    public var callObserver: CallCompletionObserver? = nil

    /// A configuration with defaults for everything but the socket path.
    public init(socketPath: String) {
        self.socketPath = socketPath
    }
}
