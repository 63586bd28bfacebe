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

    /// A configuration with defaults for everything but the socket path.
    public init(socketPath: String) {
        self.socketPath = socketPath
    }
}
