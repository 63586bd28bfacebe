internal import CNGHTTP2

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// One served method, matched against `:path` bytes without building a String per request.
final class Route: Sendable {
    let path: String
    let pathBytes: [UInt8]
    let handler: RPCHandler
    /// What the call observer gave for this path, looked up once.
    let observerIndex: Int

    init(path: String, handler: RPCHandler, observerIndex: Int) {
        self.path = path
        self.pathBytes = Array(path.utf8)
        self.handler = handler
        self.observerIndex = observerIndex
    }
}

/// What every connection of one server shares; immutable after start.
final class ServerShared: Sendable {
    let routes: [Route]
    let maxReceiveMessageBytes: Int
    let maxConcurrentStreams: UInt32
    let log: GRPCLogSink?
    let callbacks: SessionCallbacks
    let observer: CallCompletionObserver?

    init(configuration: GRPCServerConfiguration, handlers: [String: RPCHandler], log: GRPCLogSink?)
    {
        let observer = configuration.callObserver
        self.observer = observer
        routes = handlers.sorted { $0.key < $1.key }.map {
            Route(
                path: $0.key, handler: $0.value,
                observerIndex: observer.map { [key = $0.key] in $0.methodIndex(key) } ?? -1)
        }
        maxReceiveMessageBytes = configuration.maxReceiveMessageBytes
        maxConcurrentStreams = configuration.maxConcurrentStreams
        self.log = log
        callbacks = SessionCallbacks.server()
    }

    func route(matching name: UnsafePointer<UInt8>, count: Int) -> Route? {
        for route in routes where route.pathBytes.count == count {
            let equal = route.pathBytes.withUnsafeBufferPointer {
                memcmp($0.baseAddress!, name, count) == 0
            }
            if equal { return route }
        }
        return nil
    }
}

/// An nghttp2 callbacks table and session options, created once and shared by sessions.
final class SessionCallbacks: @unchecked Sendable {
    let callbacks: OpaquePointer
    let options: OpaquePointer

    private init(callbacks: OpaquePointer, options: OpaquePointer) {
        self.callbacks = callbacks
        self.options = options
    }

    deinit {
        nghttp2_session_callbacks_del(callbacks)
        nghttp2_option_del(options)
    }

    static func make(configure: (OpaquePointer) -> Void) -> SessionCallbacks {
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        configure(callbacks!)
        var options: OpaquePointer?
        nghttp2_option_new(&options)
        // gRPC peers send :authority values nghttp2's HTTP checks reject (a raw socket path);
        // method, path and content-type are validated by this module instead.
        nghttp2_option_set_no_http_messaging(options, 1)
        nghttp2_option_set_no_closed_streams(options, 1)
        return SessionCallbacks(callbacks: callbacks!, options: options!)
    }

    static func server() -> SessionCallbacks {
        make { callbacks in
            nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, serverOnBeginHeaders)
            nghttp2_session_callbacks_set_on_header_callback(callbacks, serverOnHeader)
            nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, serverOnFrameRecv)
            nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, serverOnDataChunk)
            nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, serverOnStreamClose)
            nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, serverOnFrameSend)
            nghttp2_session_callbacks_set_on_frame_not_send_callback(
                callbacks, serverOnFrameNotSend)
        }
    }
}

/// Per-loop bookkeeping of a server: its connections and whether it is draining.
final class ServerLoopContext: LoopTimer {
    let loop: EventLoop
    let shared: ServerShared
    var connections: [ObjectIdentifier: ServerConnection] = [:]
    var draining = false
    var acceptor: Acceptor?
    var drainDeadline = ContinuousClock.now
    var timerIndex = -1

    init(loop: EventLoop, shared: ServerShared) {
        self.loop = loop
        self.shared = shared
    }

    var timerDeadline: ContinuousClock.Instant { drainDeadline }

    /// The drain timeout passed: close whatever is still open.
    func timerFired() {
        for connection in Array(connections.values) { connection.forceClose() }
    }

    func adopt(fd: Int32, peerUID: UInt32?) {
        let connection = ServerConnection(context: self, fd: fd, peerUID: peerUID)
        guard connection.setUp() else {
            _ = Glibc.close(fd)
            shared.log?("grpc.connection.setup_failed fd=\(fd)")
            return
        }
        connections[ObjectIdentifier(connection)] = connection
        connection.attach()
        if draining { connection.startDrain() }
    }

    func beginDrain(timeout: Duration) {
        draining = true
        drainDeadline = ContinuousClock.now + timeout
        loop.schedule(self)
        for connection in Array(connections.values) { connection.startDrain() }
    }
}

/// The server side of one HTTP/2 connection.
final class ServerConnection: H2Connection, @unchecked Sendable {
    unowned let context: ServerLoopContext
    let shared: ServerShared
    let peerUID: UInt32?
    var calls: [Int32: ServerCall] = [:]
    private var draining = false
    private var goawaySent = false
    // The request header block being received; blocks arrive one at a time on a connection.
    private var headerMethodOK = false
    private var headerContentType = 0  // 0 missing, 1 gRPC, 2 other
    private var headerRoute: Route?
    private var headerPath: String?
    private var headerTimeout: Duration?
    private var headerTimeoutBad = false
    private var headerEncoded = false

    init(context: ServerLoopContext, fd: Int32, peerUID: UInt32?) {
        self.context = context
        self.shared = context.shared
        self.peerUID = peerUID
        super.init(loop: context.loop, fd: fd)
    }

    func setUp() -> Bool {
        var session: OpaquePointer?
        let userData = Unmanaged.passUnretained(self).toOpaque()
        let result = nghttp2_session_server_new2(
            &session, shared.callbacks.callbacks, userData, shared.callbacks.options)
        guard result == 0, let session else { return false }
        self.session = session
        var settings = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                value: shared.maxConcurrentStreams),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                value: 1 << 20),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: 64 * 1024),
        ]
        guard nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, 3) == 0
        else { return false }
        nghttp2_session_set_local_window_size(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, 16 << 20)
        return true
    }

    // MARK: - Requests

    func beginHeaders() {
        headerMethodOK = false
        headerContentType = 0
        headerRoute = nil
        headerPath = nil
        headerTimeout = nil
        headerTimeoutBad = false
        headerEncoded = false
    }

    func header(
        name: UnsafePointer<UInt8>, nameCount: Int, value: UnsafePointer<UInt8>, valueCount: Int
    ) {
        let value = UnsafeBufferPointer(start: value, count: valueCount)
        switch nameCount {
        case 5 where memcmp(name, ":path", 5) == 0:
            headerRoute = shared.route(matching: value.baseAddress!, count: valueCount)
            if headerRoute == nil { headerPath = String(decoding: value, as: UTF8.self) }
        case 7 where memcmp(name, ":method", 7) == 0:
            headerMethodOK = valueCount == 4 && memcmp(value.baseAddress!, "POST", 4) == 0
        case 12 where memcmp(name, "content-type", 12) == 0:
            let prefix = 16  // "application/grpc"
            let isGRPC =
                valueCount >= prefix && memcmp(value.baseAddress!, "application/grpc", prefix) == 0
                && (valueCount == prefix || value[prefix] == UInt8(ascii: "+")
                    || value[prefix] == UInt8(ascii: ";"))
            headerContentType = isGRPC ? 1 : 2
        case 12 where memcmp(name, "grpc-timeout", 12) == 0:
            if let timeout = GRPCTimeout.parse(value) {
                headerTimeout = timeout
            } else {
                headerTimeoutBad = true
            }
        case 13 where memcmp(name, "grpc-encoding", 13) == 0:
            headerEncoded = !(valueCount == 8 && memcmp(value.baseAddress!, "identity", 8) == 0)
        default:
            break
        }
    }

    func requestHeadersComplete(streamID: Int32, endStream: Bool) {
        if !headerMethodOK {
            observeRefusal(headerRoute, .internalError)
            respondTrailersOnly(
                streamID, httpStatus: KnownHeaders.shared.status405,
                status: GRPCStatus(code: .internalError, message: "method must be POST"))
            return
        }
        if headerContentType != 1 {
            observeRefusal(headerRoute, .internalError)
            respondTrailersOnly(
                streamID, httpStatus: KnownHeaders.shared.status415,
                status: GRPCStatus(code: .internalError, message: "invalid gRPC content-type"))
            return
        }
        if headerTimeoutBad {
            // Malformed grpc-timeout is an error, as grpc-go treats it, not a silent no-deadline.
            observeRefusal(headerRoute, .internalError)
            respond(streamID, GRPCStatus(code: .internalError, message: "malformed grpc-timeout"))
            return
        }
        guard let route = headerRoute else {
            observeRefusal(nil, .unimplemented)
            respond(
                streamID,
                GRPCStatus(code: .unimplemented, message: "unknown method \(headerPath ?? "")"))
            return
        }
        if headerEncoded {
            observeRefusal(route, .unimplemented)
            respond(
                streamID,
                GRPCStatus(code: .unimplemented, message: "message compression is not supported"))
            return
        }
        let deadline = headerTimeout.map { ContinuousClock.now + $0 }
        let call = ServerCall(
            connection: self, streamID: streamID, route: route, deadline: deadline)
        if shared.observer != nil { call.arrivedAt = monotonicNanoseconds() }
        calls[streamID] = call
        nghttp2_session_set_stream_user_data(
            session, streamID, Unmanaged.passUnretained(call).toOpaque())
        if deadline != nil { loop.schedule(call) }
        if case .bidirectionalStreaming(let handler) = route.handler {
            startBidirectional(call, handler)
        }
        if endStream { requestEnded(call) }
    }

    /// Counts a call refused before it had a `ServerCall`, with no duration to speak of.
    private func observeRefusal(_ route: Route?, _ code: GRPCStatus.Code) {
        guard let observer = shared.observer else { return }
        observer.completed(route?.observerIndex ?? -1, code.rawValue, 0)
    }

    /// Starts a bidirectional call as soon as its headers are in; messages follow as they come.
    private func startBidirectional(
        _ call: ServerCall,
        _ handler: @Sendable (CallContext, StreamResponder) -> RequestStreamObserver
    ) {
        call.started = true
        let outbox = StreamOutbox()
        call.outbox = outbox
        if draining {
            outbox.state.withLock { $0.cancelFired = true }
            call.cancelled.store(true, ordering: .releasing)
        }
        let context = CallContext(path: call.route.path, deadline: call.deadline, peerUID: peerUID)
        call.inbound = handler(context, StreamResponder(call: call, outbox: outbox))
        if draining { endStreamingForDrain(call) }
    }

    /// Hands each whole message of a bidirectional call to its observer as soon as it is in.
    private func bidirectionalData(
        _ call: ServerCall, _ inbound: RequestStreamObserver, _ data: UnsafeRawBufferPointer
    ) {
        if call.isClaimed { return }
        let error = call.reader.consume(data, limit: shared.maxReceiveMessageBytes) { message in
            if !call.isClaimed { inbound.onMessage(message) }
        }
        if let error { failStreaming(call, error.status) }
    }

    /// Ends a streaming call with `status` after what it already sent, unless it already ended.
    private func failStreaming(_ call: ServerCall, _ status: GRPCStatus) {
        guard call.claim(), let outbox = call.outbox else { return }
        call.cancelled.store(true, ordering: .releasing)
        fireCancel(outbox)
        outbox.state.withLock { $0.finalStatus = status }
        resumeStreaming(call)
    }

    func requestData(_ call: ServerCall, _ data: UnsafeRawBufferPointer) {
        if let inbound = call.inbound { return bidirectionalData(call, inbound, data) }
        if call.started || call.isClaimed { return }
        let isUnary: Bool
        if case .unary = call.route.handler { isUnary = true } else { isUnary = false }
        var tooMany = false
        let error = call.reader.consume(data, limit: shared.maxReceiveMessageBytes) { message in
            call.messageCount += 1
            if call.messageCount == 1 {
                call.request = message
            } else {
                tooMany = true
            }
        }
        if let error {
            fail(call, error.status)
        } else if tooMany {
            let kind = isUnary ? "unary" : "server-streaming"
            fail(
                call,
                GRPCStatus(
                    code: .internalError, message: "too many request messages for \(kind) method"))
        }
    }

    func requestEnded(_ call: ServerCall) {
        call.remoteClosed = true
        if let inbound = call.inbound {
            if call.isClaimed { return }
            if call.reader.isMidMessage {
                let status = GRPCStatus(
                    code: .internalError, message: "request ended inside a message")
                failStreaming(call, status)
            } else {
                inbound.onEnd()
            }
            return
        }
        if call.started || call.isClaimed { return }
        if call.reader.isMidMessage {
            fail(call, GRPCStatus(code: .internalError, message: "request ended inside a message"))
            return
        }
        if call.messageCount != 1 {
            fail(call, GRPCStatus(code: .internalError, message: "request has no message"))
            return
        }
        if let deadline = call.deadline, deadline <= ContinuousClock.now {
            deadlinePassed(call)
            return
        }
        call.started = true
        let context = CallContext(path: call.route.path, deadline: call.deadline, peerUID: peerUID)
        let request = call.request
        call.request = []
        switch call.route.handler {
        case .unary(let handler):
            handler(request, context, UnaryResponder(call: call))
        case .bidirectionalStreaming:
            break  // started when its headers arrived
        case .serverStreaming(let handler):
            let outbox = StreamOutbox()
            call.outbox = outbox
            if draining {
                outbox.state.withLock { $0.cancelFired = true }
                call.cancelled.store(true, ordering: .releasing)
            }
            handler(request, context, StreamResponder(call: call, outbox: outbox))
            if draining { endStreamingForDrain(call) }
        }
    }

    /// Ends a call that has not been answered with an error, if nobody answered it first.
    private func fail(_ call: ServerCall, _ status: GRPCStatus) {
        guard call.claim() else { return }
        loop.cancel(call)
        call.sentCode = status.code.rawValue
        respond(call.streamID, status)
    }

    // MARK: - Responses

    /// Submits a unary answer; runs on the loop thread after the responder claimed the call.
    func deliverUnary(_ call: ServerCall, message: [UInt8]?, status: GRPCStatus?) {
        if call.timerIndex >= 0 { loop.cancel(call) }
        if call.streamGone || isClosed { return }
        loop.scheduleFlush(self)
        guard let message else {
            let status = status ?? .ok
            call.sentCode = status.code.rawValue
            respond(call.streamID, status)
            return
        }
        call.sentCode = 0
        call.response = message
        call.responseOffset = -5
        submitResponseHeaders(call)
    }

    private func submitResponseHeaders(_ call: ServerCall) {
        let known = KnownHeaders.shared
        var provider = nghttp2_data_provider()
        provider.source.ptr = Unmanaged.passUnretained(call).toOpaque()
        provider.read_callback = call.outbox == nil ? serverReadUnary : serverReadStreaming
        withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: 2) { nva in
            nva[0] = HeaderField.nv(known.status, known.status200)
            nva[1] = HeaderField.nv(known.contentType, known.applicationGRPC)
            let result = nghttp2_submit_response(
                session, call.streamID, nva.baseAddress, 2, &provider)
            if result != 0 { resetStream(call.streamID, "submit_response", result) }
        }
        call.headersSubmitted = true
    }

    /// Resets a stream whose answer could not be queued or sent, so its client learns at once
    /// (RST_STREAM INTERNAL_ERROR) instead of waiting for a deadline that may never come.
    func resetStream(_ streamID: Int32, _ operation: String, _ error: Int32) {
        shared.log?(
            "grpc.stream.reset stream=\(streamID) op=\(operation) "
                + "error=\"\(String(cString: nghttp2_strerror(error)))\"")
        if isClosed { return }
        let result = nghttp2_submit_rst_stream(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, NGHTTP2_INTERNAL_ERROR.rawValue)
        if result != 0 && result != Int32(NGHTTP2_ERR_INVALID_ARGUMENT.rawValue) {
            // Not even the reset can be queued: the session is unusable, so close it.
            shared.log?("grpc.connection.reset_failed stream=\(streamID) error=\(result)")
            closeWhenFlushed = true
        }
        loop.scheduleFlush(self)
    }

    /// A trailers-only response (`:status 200`, content-type, grpc-status, grpc-message).
    func respond(_ streamID: Int32, _ status: GRPCStatus) {
        respondTrailersOnly(streamID, httpStatus: KnownHeaders.shared.status200, status: status)
    }

    private func respondTrailersOnly(
        _ streamID: Int32, httpStatus: (UnsafeMutablePointer<UInt8>, Int), status: GRPCStatus
    ) {
        let known = KnownHeaders.shared
        withStatusFields(status) { fields in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: 2 + fields.count) { nva in
                nva[0] = HeaderField.nv(known.status, httpStatus)
                nva[1] = HeaderField.nv(known.contentType, known.applicationGRPC)
                for index in 0..<fields.count { nva[2 + index] = fields[index] }
                let result = nghttp2_submit_response(
                    session, streamID, nva.baseAddress, nva.count, nil)
                if result != 0 { resetStream(streamID, "submit_response", result) }
            }
        }
        loop.scheduleFlush(self)
    }

    /// Queues the trailers of `status`; false (logged) when nghttp2 refused them, in which case
    /// the caller, a data source callback, must have nghttp2 reset the stream.
    func submitTrailers(_ streamID: Int32, _ status: GRPCStatus) -> Bool {
        let result = withStatusFields(status) { fields in
            nghttp2_submit_trailer(session, streamID, fields.baseAddress, fields.count)
        }
        if result == 0 { return true }
        shared.log?(
            "grpc.stream.reset stream=\(streamID) op=submit_trailer "
                + "error=\"\(String(cString: nghttp2_strerror(result)))\"")
        return false
    }

    /// A response or trailer header block nghttp2 could not send (too large, say): without it
    /// the stream would stay open with the client waiting, so reset it.
    func headersNotSent(streamID: Int32, error: Int32) {
        resetStream(streamID, "send_headers", error)
    }

    /// The grpc-status, grpc-message and grpc-retry-pushback-ms entries of `status`.
    private func withStatusFields<Result>(
        _ status: GRPCStatus, _ body: (UnsafeMutableBufferPointer<nghttp2_nv>) -> Result
    ) -> Result {
        let known = KnownHeaders.shared
        let raw = status.code.rawValue
        if status.message.isEmpty && status.retryPushbackMilliseconds == nil && raw >= 0
            && raw <= 16
        {
            return withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: 1) { nva in
                nva[0] = HeaderField.nv(known.grpcStatus, known.codes[Int(raw)])
                return body(nva)
            }
        }
        var code = Array(String(raw).utf8)
        var message = PercentEncoding.encodeMessage(status.message)
        var pushback = Array(
            (status.retryPushbackMilliseconds.map { String(max(0, $0)) } ?? "").utf8)
        return code.withUnsafeMutableBufferPointer { code in
            message.withUnsafeMutableBufferPointer { message in
                pushback.withUnsafeMutableBufferPointer { pushback in
                    withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: 3) { nva in
                        var count = 0
                        nva[count] = HeaderField.nv(known.grpcStatus, copying: code)
                        count += 1
                        if message.count > 0 {
                            nva[count] = HeaderField.nv(known.grpcMessage, copying: message)
                            count += 1
                        }
                        if pushback.count > 0 {
                            nva[count] = HeaderField.nv(known.grpcPushback, copying: pushback)
                            count += 1
                        }
                        return body(UnsafeMutableBufferPointer(rebasing: nva[0..<count]))
                    }
                }
            }
        }
    }

    /// Hands queued streaming output to nghttp2; runs on the loop thread.
    func resumeStreaming(_ call: ServerCall) {
        guard let outbox = call.outbox, !call.streamGone, !isClosed else { return }
        loop.scheduleFlush(self)
        if call.headersSubmitted {
            nghttp2_session_resume_data(session, call.streamID)
            return
        }
        // A stream that ends before sending anything is answered trailers-only.
        let immediate = outbox.state.withLock { state -> GRPCStatus? in
            if state.pending.isEmpty, let status = state.finalStatus {
                state.wakeQueued = false
                return status
            }
            return nil
        }
        if let immediate {
            if call.timerIndex >= 0 { loop.cancel(call) }
            call.sentCode = immediate.code.rawValue
            respond(call.streamID, immediate)
            call.headersSubmitted = true
        } else {
            submitResponseHeaders(call)
        }
    }

    func deadlinePassed(_ call: ServerCall) {
        guard call.claim() else { return }
        call.cancelled.store(true, ordering: .releasing)
        let status = GRPCStatus(code: .deadlineExceeded, message: "deadline exceeded")
        if let outbox = call.outbox {
            fireCancel(outbox)
            outbox.state.withLock { $0.finalStatus = status }
            resumeStreaming(call)
        } else if !call.streamGone {
            call.sentCode = status.code.rawValue
            respond(call.streamID, status)
        }
    }

    private func fireCancel(_ outbox: StreamOutbox) {
        let action = outbox.state.withLock { state -> (@Sendable () -> Void)? in
            if state.cancelFired { return nil }
            state.cancelFired = true
            defer { state.onCancel = nil }
            return state.onCancel
        }
        action?()
    }

    // MARK: - Stream and connection events

    func frameSent(streamID: Int32, endStream: Bool) {
        guard endStream else { return }
        // Answered before the client finished sending: tell it to stop, as gRPC servers do.
        if nghttp2_session_get_stream_remote_close(session, streamID) == 0 {
            nghttp2_submit_rst_stream(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, NGHTTP2_NO_ERROR.rawValue)
        }
    }

    func streamClosed(_ streamID: Int32) {
        guard let call = calls.removeValue(forKey: streamID) else { return }
        if let observer = shared.observer { observeCompletion(call, observer) }
        call.streamGone = true
        cancelCall(call)
        if draining { checkDrained() }
    }

    private func observeCompletion(_ call: ServerCall, _ observer: CallCompletionObserver) {
        let elapsed = monotonicNanoseconds() &- call.arrivedAt
        let code = call.sentCode >= 0 ? call.sentCode : GRPCStatus.Code.cancelled.rawValue
        observer.completed(call.route.observerIndex, code, Double(elapsed) * 1e-9)
    }

    private func cancelCall(_ call: ServerCall) {
        if call.timerIndex >= 0 { loop.cancel(call) }
        if call.claim() {
            call.cancelled.store(true, ordering: .releasing)
        }
        if let outbox = call.outbox { fireCancel(outbox) }
    }

    override func connectionDidClose() {
        for call in calls.values {
            if let observer = shared.observer { observeCompletion(call, observer) }
            call.streamGone = true
            cancelCall(call)
        }
        calls.removeAll()
        context.connections[ObjectIdentifier(self)] = nil
    }

    override func protocolError(_ description: String) {
        shared.log?("grpc.connection.protocol_error error=\"\(description)\"")
    }

    // MARK: - Draining

    func startDrain() {
        if draining || isClosed { return }
        draining = true
        nghttp2_submit_shutdown_notice(session)
        for call in Array(calls.values) where call.outbox != nil && call.started {
            call.cancelled.store(true, ordering: .releasing)
            fireCancel(call.outbox!)
            endStreamingForDrain(call)
        }
        loop.scheduleFlush(self)
        checkDrained()
    }

    private func endStreamingForDrain(_ call: ServerCall) {
        guard call.claim(), let outbox = call.outbox else { return }
        outbox.state.withLock { state in
            if state.finalStatus == nil {
                state.finalStatus = GRPCStatus(
                    code: .unavailable, message: "server is shutting down")
            }
        }
        resumeStreaming(call)
    }

    private func checkDrained() {
        guard draining, !goawaySent, calls.isEmpty, !isClosed else { return }
        goawaySent = true
        nghttp2_submit_goaway(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue),
            nghttp2_session_get_last_proc_stream_id(session),
            NGHTTP2_NO_ERROR.rawValue, nil, 0)
        closeWhenFlushed = true
        loop.scheduleFlush(self)
    }

    func forceClose() {
        if isClosed { return }
        if !goawaySent {
            goawaySent = true
            nghttp2_submit_goaway(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue),
                nghttp2_session_get_last_proc_stream_id(session), NGHTTP2_NO_ERROR.rawValue, nil, 0)
        }
        flush()
        close()
    }
}

/// CLOCK_MONOTONIC in nanoseconds, for call durations: a plain integer keeps the per-call cost
/// to two clock reads and a subtraction.
@inline(__always)
private func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

// MARK: - nghttp2 callbacks (capture-free; the connection arrives through user_data)

@inline(__always)
private func connection(_ userData: UnsafeMutableRawPointer?) -> ServerConnection {
    Unmanaged<ServerConnection>.fromOpaque(userData!).takeUnretainedValue()
}

@inline(__always)
private func call(_ session: OpaquePointer?, _ streamID: Int32) -> ServerCall? {
    guard let pointer = nghttp2_session_get_stream_user_data(session, streamID) else { return nil }
    return Unmanaged<ServerCall>.fromOpaque(pointer).takeUnretainedValue()
}

private let serverOnBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
    let frame = frame!.pointee
    if frame.hd.type == UInt8(NGHTTP2_HEADERS.rawValue)
        && frame.headers.cat == NGHTTP2_HCAT_REQUEST
    {
        connection(userData).beginHeaders()
    }
    return 0
}

private let serverOnHeader: nghttp2_on_header_callback = {
    _, frame, name, nameCount, value, valueCount, _, userData in
    let frame = frame!.pointee
    if frame.hd.type == UInt8(NGHTTP2_HEADERS.rawValue)
        && frame.headers.cat == NGHTTP2_HCAT_REQUEST
    {
        connection(userData).header(
            name: name!, nameCount: nameCount, value: value!, valueCount: valueCount)
    }
    return 0
}

private let serverOnFrameRecv: nghttp2_on_frame_recv_callback = { session, frame, userData in
    let frame = frame!.pointee
    let endStream = frame.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
    switch UInt32(frame.hd.type) {
    case NGHTTP2_HEADERS.rawValue:
        if frame.headers.cat == NGHTTP2_HCAT_REQUEST {
            connection(userData).requestHeadersComplete(
                streamID: frame.hd.stream_id, endStream: endStream)
        } else if endStream, let call = call(session, frame.hd.stream_id) {
            connection(userData).requestEnded(call)
        }
    case NGHTTP2_DATA.rawValue:
        if endStream, let call = call(session, frame.hd.stream_id) {
            connection(userData).requestEnded(call)
        }
    default:
        break
    }
    return 0
}

private let serverOnDataChunk: nghttp2_on_data_chunk_recv_callback = {
    session, _, streamID, data, count, userData in
    if let call = call(session, streamID) {
        connection(userData).requestData(call, UnsafeRawBufferPointer(start: data, count: count))
    }
    return 0
}

private let serverOnStreamClose: nghttp2_on_stream_close_callback = { _, streamID, _, userData in
    connection(userData).streamClosed(streamID)
    return 0
}

private let serverOnFrameSend: nghttp2_on_frame_send_callback = { _, frame, userData in
    let frame = frame!.pointee
    let type = UInt32(frame.hd.type)
    if type == NGHTTP2_HEADERS.rawValue || type == NGHTTP2_DATA.rawValue {
        let endStream = frame.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        connection(userData).frameSent(streamID: frame.hd.stream_id, endStream: endStream)
    }
    return 0
}

private let serverOnFrameNotSend: nghttp2_on_frame_not_send_callback = {
    _, frame, error, userData in
    let frame = frame!.pointee
    if UInt32(frame.hd.type) == NGHTTP2_HEADERS.rawValue {
        connection(userData).headersNotSent(streamID: frame.hd.stream_id, error: error)
    }
    return 0
}

private let serverReadUnary: nghttp2_data_source_read_callback = {
    session, streamID, buffer, length, flags, source, _ in
    let call = Unmanaged<ServerCall>.fromOpaque(source!.pointee.ptr).takeUnretainedValue()
    var written = 0
    if call.responseOffset < 0 {
        // The 5-byte prefix goes out first; nghttp2 always offers far more than 5 bytes.
        var prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &prefix) {
            MessagePrefix.write(
                length: call.response.count, to: $0.baseAddress!.assumingMemoryBound(to: UInt8.self)
            )
        }
        let take = min(-call.responseOffset, length)
        withUnsafeBytes(of: prefix) { raw in
            let start = 5 + call.responseOffset
            buffer!.update(
                from: raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + start, count: take)
        }
        call.responseOffset += take
        written = take
        if call.responseOffset < 0 { return written }
    }
    let remaining = call.response.count - max(call.responseOffset, 0)
    let take = min(remaining, length - written)
    if take > 0 {
        call.response.withUnsafeBufferPointer { bytes in
            (buffer! + written).update(from: bytes.baseAddress! + call.responseOffset, count: take)
        }
        call.responseOffset += take
        written += take
    }
    if call.responseOffset == call.response.count {
        flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
        call.response = []
        guard call.connection.submitTrailers(streamID, .ok) else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
    }
    return written
}

private let serverReadStreaming: nghttp2_data_source_read_callback = {
    session, streamID, buffer, length, flags, source, _ in
    let call = Unmanaged<ServerCall>.fromOpaque(source!.pointee.ptr).takeUnretainedValue()
    guard let outbox = call.outbox else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    let (written, final) = outbox.state.withLock { state -> (Int, GRPCStatus?) in
        let available = state.pending.count - state.pendingOffset
        let take = min(available, length)
        if take > 0 {
            state.pending.withUnsafeBufferPointer { bytes in
                buffer!.update(from: bytes.baseAddress! + state.pendingOffset, count: take)
            }
            state.pendingOffset += take
        }
        if state.pendingOffset == state.pending.count {
            state.pending.removeAll(keepingCapacity: true)
            state.pendingOffset = 0
            state.wakeQueued = false
            if take == 0 && state.finalStatus == nil {
                return (Int(NGHTTP2_ERR_DEFERRED.rawValue), nil)
            }
            return (take, state.finalStatus)
        }
        return (take, nil)
    }
    if let final {
        flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
        if call.timerIndex >= 0 { call.connection.loop.cancel(call) }
        call.sentCode = final.code.rawValue
        // nghttp2 answers a temporal failure from a data source with RST_STREAM INTERNAL_ERROR.
        guard call.connection.submitTrailers(streamID, final) else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
    }
    return written
}
