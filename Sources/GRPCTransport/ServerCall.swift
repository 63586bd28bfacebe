import Synchronization

/// The state of one server call. Fields without a lock belong to the connection's loop thread;
/// `claimed` and `cancelled` are the only things other threads touch, apart from the streaming
/// outbox, which has its own lock.
final class ServerCall: LoopTimer, @unchecked Sendable {
    let connection: ServerConnection
    let streamID: Int32
    let route: Route
    let deadline: ContinuousClock.Instant?
    var reader = MessageReader()
    var request: [UInt8] = []
    var messageCount = 0
    /// The client sent END_STREAM.
    var remoteClosed = false
    /// nghttp2 closed the stream; nothing may be submitted for it any more.
    var streamGone = false
    /// The handler was called.
    var started = false
    /// Response headers were submitted (streaming calls send them before the first message).
    var headersSubmitted = false
    var timerIndex = -1
    /// Set by whoever first decides how the call ends (an answer, the deadline, a reset).
    private let claimed = Atomic<Bool>(false)
    let cancelled = Atomic<Bool>(false)
    // Unary response, read by the data provider.
    var response: [UInt8] = []
    var responseOffset = -5
    // Server-streaming state, shared with any thread.
    var outbox: StreamOutbox?
    /// The handler's observer of request messages, for bidirectional calls only.
    var inbound: RequestStreamObserver?
    /// When the request headers arrived, in CLOCK_MONOTONIC nanoseconds; set only when a call
    /// observer is configured.
    var arrivedAt: UInt64 = 0
    /// The gRPC status code submitted for this call; -1 until one is.
    var sentCode: Int32 = -1

    init(
        connection: ServerConnection, streamID: Int32, route: Route,
        deadline: ContinuousClock.Instant?
    ) {
        self.connection = connection
        self.streamID = streamID
        self.route = route
        self.deadline = deadline
    }

    var timerDeadline: ContinuousClock.Instant { deadline! }

    func timerFired() {
        connection.deadlinePassed(self)
    }

    /// True for exactly one caller: the one that gets to end the call.
    @inline(__always)
    func claim() -> Bool {
        claimed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing)
            .exchanged
    }

    var isClaimed: Bool { claimed.load(ordering: .acquiring) }
}

/// Messages and the final status of a server-streaming call, handed from any thread to the loop.
final class StreamOutbox: @unchecked Sendable {
    struct State {
        var pending: [UInt8] = []
        var pendingOffset = 0
        var finalStatus: GRPCStatus?
        var wakeQueued = false
        var onCancel: (@Sendable () -> Void)?
        var cancelFired = false
    }

    let state = Mutex(State())
}

/// Completes one unary call exactly once, from any thread; later completions are ignored.
///
/// Completing on the connection's own thread inside the handler call is the fast path: the
/// answer is submitted to the HTTP/2 session directly, with no queue hop and no wake-up.
public final class UnaryResponder: Sendable {
    let call: ServerCall

    init(call: ServerCall) {
        self.call = call
    }

    /// Answers the call with one response message and status OK.
    public func succeed(_ message: [UInt8]) {
        guard call.claim() else { return }
        let connection = call.connection
        if connection.loop.inLoop {
            connection.deliverUnary(call, message: message, status: nil)
        } else {
            let call = self.call
            connection.loop.execute { connection.deliverUnary(call, message: message, status: nil) }
        }
    }

    /// Ends the call with an error status (an OK status is sent as an OK without a message).
    public func fail(_ status: GRPCStatus) {
        guard call.claim() else { return }
        let connection = call.connection
        if connection.loop.inLoop {
            connection.deliverUnary(call, message: nil, status: status)
        } else {
            let call = self.call
            connection.loop.execute { connection.deliverUnary(call, message: nil, status: status) }
        }
    }

    /// True when nobody waits for the answer any more: the client reset the stream, the deadline
    /// passed, or the connection is gone.
    public var isCancelled: Bool { call.cancelled.load(ordering: .acquiring) }
}

/// Sends the messages of one server-streaming call from any thread, then its final status.
public final class StreamResponder: Sendable {
    let call: ServerCall
    let outbox: StreamOutbox

    init(call: ServerCall, outbox: StreamOutbox) {
        self.call = call
        self.outbox = outbox
    }

    /// Queues one message; ignored after `finish` or cancellation.
    public func send(_ message: [UInt8]) {
        if call.isClaimed { return }
        let wake = outbox.state.withLock { state -> Bool in
            if state.finalStatus != nil { return false }
            var prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &prefix) {
                MessagePrefix.write(
                    length: message.count, to: $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            withUnsafeBytes(of: prefix) { state.pending.append(contentsOf: $0) }
            state.pending.append(contentsOf: message)
            if state.wakeQueued { return false }
            state.wakeQueued = true
            return true
        }
        if wake { wakeLoop() }
    }

    /// Ends the stream with `status` after the messages already sent.
    public func finish(_ status: GRPCStatus) {
        guard call.claim() else { return }
        let wake = outbox.state.withLock { state -> Bool in
            state.finalStatus = status
            if state.wakeQueued { return false }
            state.wakeQueued = true
            return true
        }
        if wake { wakeLoop() }
    }

    /// Runs `action` once when the client goes away or resets the stream, the deadline passes, or
    /// the server drains; at once when that already happened.
    public func onCancel(_ action: @escaping @Sendable () -> Void) {
        let runNow = outbox.state.withLock { state -> Bool in
            if state.cancelFired { return true }
            state.onCancel = action
            return false
        }
        if runNow { action() }
    }

    private func wakeLoop() {
        let call = self.call
        let connection = call.connection
        connection.loop.execute { connection.resumeStreaming(call) }
    }
}
