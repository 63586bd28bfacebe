internal import CNGHTTP2
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A gRPC client over one HTTP/2 connection on a Unix socket, with its own event-loop thread.
///
/// Any number of calls may be in flight at once, started from any thread or task. Transport
/// failures (connection refused or lost, GOAWAY) end calls with UNAVAILABLE.
public final class GRPCClientConnection: Sendable {
    private let loop: EventLoop
    private let core: ClientCore
    private let closed = Atomic<Bool>(false)

    /// Connects to `socketPath` (`/path` or `@abstract`).
    /// - Parameter authority: sent as `:authority`.
    /// - Throws: `TransportError` when the socket cannot be reached.
    public init(socketPath: String, authority: String = "localhost") throws {
        let fd = try Sockets.connect(path: socketPath)
        let loop: EventLoop
        do {
            loop = try EventLoop(name: "grpc-client")
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
        let core = ClientCore(loop: loop, fd: fd, authority: authority)
        guard core.setUp() else {
            _ = Glibc.close(fd)
            throw TransportError(
                operation: "nghttp2_session_client_new", errno: 0, detail: socketPath)
        }
        try loop.start()
        loop.execute { core.attach() }
        self.loop = loop
        self.core = core
    }

    deinit {
        close()
    }

    /// One unary call; many may be in flight at once on one connection from many threads.
    /// - Parameter timeout: sent as `grpc-timeout` and enforced locally too.
    /// - Returns: the response message.
    /// - Throws: the call's status when it is not OK.
    public func unary(
        path: String, request: [UInt8], timeout: Duration? = nil
    ) async throws(GRPCStatus) -> [UInt8] {
        let box = ClientCallBox()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let call = ClientCall(
                    path: path, request: request, timeout: timeout, contentType: nil,
                    kind: .unary({ continuation.resume(returning: $0) }))
                box.set(call)
                submit(call)
            }
        } onCancel: {
            cancel(box)
        }
        return try result.get()
    }

    /// Starts one unary call; `completion` runs exactly once, on the connection's thread.
    public func startUnary(
        path: String, request: [UInt8], timeout: Duration?,
        completion: @escaping @Sendable (Result<[UInt8], GRPCStatus>) -> Void
    ) {
        let call = ClientCall(
            path: path, request: request, timeout: timeout, contentType: nil,
            kind: .unary(completion))
        submit(call)
    }

    /// A server-streaming call: `onMessage` runs on the connection's thread for every message.
    /// - Throws: the final status when it is not OK.
    public func serverStreaming(
        path: String, request: [UInt8], onMessage: @escaping @Sendable ([UInt8]) -> Void
    ) async throws(GRPCStatus) {
        let box = ClientCallBox()
        let status = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let call = ClientCall(
                    path: path, request: request, timeout: nil, contentType: nil,
                    kind: .streaming(onMessage, { continuation.resume(returning: $0) }))
                box.set(call)
                submit(call)
            }
        } onCancel: {
            cancel(box)
        }
        if status.code != .ok { throw status }
    }

    /// Opens a bidirectional call: messages go out with `send` as they are written, the request
    /// side ends with `closeSend`, and `onMessage` runs on the connection's thread for every
    /// response message, `onEnd` once with the final status.
    public func bidirectionalStream(
        path: String, onMessage: @escaping @Sendable ([UInt8]) -> Void,
        onEnd: @escaping @Sendable (GRPCStatus) -> Void
    ) -> ClientStream {
        let call = ClientCall(
            path: path, request: [], timeout: nil, contentType: nil,
            kind: .streaming(onMessage, onEnd))
        call.outgoing = ClientOutgoing()
        submit(call)
        return ClientStream(loop: loop, core: core, call: call)
    }

    /// Ends a call whose task was cancelled: RST_STREAM(CANCEL) and status CANCELLED.
    private func cancel(_ box: ClientCallBox) {
        let core = self.core
        loop.execute {
            guard let call = box.take() else { return }
            core.cancel(call)
        }
    }

    /// A unary call with a chosen content-type, reporting the HTTP status too; for tests of the
    /// server's request validation.
    /// - Parameter unframed: send `request` verbatim as the DATA payload, without a prefix.
    func rawUnary(
        path: String, request: [UInt8], contentType: String = "application/grpc",
        unframed: Bool = false
    ) async -> (httpStatus: Int, result: Result<[UInt8], GRPCStatus>) {
        await withCheckedContinuation { continuation in
            let box = ClientCallBox()
            let call = ClientCall(
                path: path, request: request, timeout: nil, contentType: contentType,
                kind: .unary({ result in
                    continuation.resume(returning: (box.take()?.httpStatus ?? 0, result))
                }))
            if unframed { call.requestOffset = 0 }
            box.set(call)
            submit(call)
        }
    }

    private func submit(_ call: ClientCall) {
        if loop.inLoop {
            core.start(call)
        } else {
            let core = self.core
            loop.execute { core.start(call) }
        }
    }

    /// Sends GOAWAY, fails calls still in flight with UNAVAILABLE and stops the thread.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let core = self.core
        loop.execute { core.goAway() }
        loop.stop()
        if !loop.inLoop { loop.join() }
    }
}

/// The sending side of a bidirectional call; every method may be called from any thread.
public final class ClientStream: Sendable {
    private let loop: EventLoop
    private let core: ClientCore
    private let call: ClientCall

    init(loop: EventLoop, core: ClientCore, call: ClientCall) {
        self.loop = loop
        self.core = core
        self.call = call
    }

    /// Queues one request message; ignored after `closeSend` or once the call ended.
    public func send(_ message: [UInt8]) {
        let call = self.call
        let core = self.core
        loop.execute { core.enqueue(call, message: message) }
    }

    /// Half-closes: tells the server no more request messages will come.
    public func closeSend() {
        let call = self.call
        let core = self.core
        loop.execute { core.enqueue(call, message: nil) }
    }

    /// Resets the stream; the call ends with CANCELLED.
    public func cancel() {
        let call = self.call
        let core = self.core
        loop.execute { core.cancel(call) }
    }
}

/// Request bytes of a bidirectional call not yet taken by nghttp2; loop-thread state.
final class ClientOutgoing {
    var pending: [UInt8] = []
    var offset = 0
    var closed = false
    /// nghttp2 was told there is nothing to send for now, and must be woken.
    var deferred = false
}

/// Hands a call created inside a continuation to a cancellation handler on another thread.
final class ClientCallBox: Sendable {
    private let call = Mutex<ClientCall?>(nil)

    func set(_ value: ClientCall) { call.withLock { $0 = value } }
    func take() -> ClientCall? { call.withLock { $0.take() } }
}

/// One client call; loop-thread state only.
final class ClientCall: LoopTimer, @unchecked Sendable {
    enum Kind {
        case unary(@Sendable (Result<[UInt8], GRPCStatus>) -> Void)
        case streaming(@Sendable ([UInt8]) -> Void, @Sendable (GRPCStatus) -> Void)
    }

    let path: String
    var request: [UInt8]
    var requestOffset = -5
    let timeout: Duration?
    let contentType: String?
    let kind: Kind
    var deadline = ContinuousClock.now
    var timerIndex = -1
    var streamID: Int32 = -1
    weak var core: ClientCore?
    var reader = MessageReader()
    var httpStatus = 0
    var grpcStatus: Int32?
    var grpcMessage: String?
    var pushback: Int?
    var response: [UInt8] = []
    var messageCount = 0
    var failure: GRPCStatus?
    var finished = false
    /// The request stream of a bidirectional call; nil for unary and server-streaming calls.
    var outgoing: ClientOutgoing?

    init(path: String, request: [UInt8], timeout: Duration?, contentType: String?, kind: Kind) {
        self.path = path
        self.request = request
        self.timeout = timeout
        self.contentType = contentType
        self.kind = kind
    }

    var timerDeadline: ContinuousClock.Instant { deadline }

    func timerFired() {
        core?.deadlinePassed(self)
    }

    func complete(_ status: GRPCStatus) {
        if finished { return }
        finished = true
        switch kind {
        case .unary(let completion):
            if status.code == .ok {
                if messageCount == 1 {
                    completion(.success(response))
                } else {
                    completion(
                        .failure(
                            GRPCStatus(
                                code: .internalError,
                                message: "unary response carried \(messageCount) messages")))
                }
            } else {
                completion(.failure(status))
            }
        case .streaming(_, let done):
            done(status)
        }
        response = []
    }
}

/// The client side of the HTTP/2 connection.
final class ClientCore: H2Connection, @unchecked Sendable {
    let authority: String
    var calls: [Int32: ClientCall] = [:]
    private var goingAway = false
    let maxReceiveMessageBytes = 64 * 1024 * 1024

    init(loop: EventLoop, fd: Int32, authority: String) {
        self.authority = authority
        super.init(loop: loop, fd: fd)
    }

    func setUp() -> Bool {
        var session: OpaquePointer?
        let callbacks = ClientCallbacks.shared
        let result = nghttp2_session_client_new2(
            &session, callbacks.callbacks, Unmanaged.passUnretained(self).toOpaque(),
            callbacks.options)
        guard result == 0, let session else { return false }
        self.session = session
        var settings = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: 1 << 20),
        ]
        guard nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, 2) == 0
        else { return false }
        nghttp2_session_set_local_window_size(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, 16 << 20)
        return true
    }

    func start(_ call: ClientCall) {
        if call.finished { return }
        if isClosed || goingAway || nghttp2_session_check_request_allowed(session) == 0 {
            call.complete(GRPCStatus(code: .unavailable, message: "connection is closed"))
            return
        }
        call.core = self
        let known = KnownHeaders.shared
        var path = Array(call.path.utf8)
        var authority = Array(self.authority.utf8)
        var contentType = Array((call.contentType ?? "application/grpc").utf8)
        var timeout = Array((call.timeout.map { GRPCTimeout.encode($0) } ?? "").utf8)
        var provider = nghttp2_data_provider()
        provider.source.ptr = Unmanaged.passUnretained(call).toOpaque()
        provider.read_callback = call.outgoing == nil ? clientReadRequest : clientReadStream
        let userData = Unmanaged.passUnretained(call).toOpaque()
        let streamID = path.withUnsafeMutableBufferPointer { path in
            authority.withUnsafeMutableBufferPointer { authority in
                contentType.withUnsafeMutableBufferPointer { contentType in
                    timeout.withUnsafeMutableBufferPointer { timeout in
                        withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: 8) { nva in
                            nva[0] = HeaderField.nv(known.method, known.post)
                            nva[1] = HeaderField.nv(known.scheme, known.http)
                            nva[2] = HeaderField.nv(known.path, copying: path)
                            nva[3] = HeaderField.nv(known.authority, copying: authority)
                            nva[4] = HeaderField.nv(known.contentType, copying: contentType)
                            nva[5] = HeaderField.nv(known.te, known.trailers)
                            nva[6] = HeaderField.nv(known.userAgent, known.agent)
                            var count = 7
                            if timeout.count > 0 {
                                nva[7] = HeaderField.nv(known.grpcTimeout, copying: timeout)
                                count = 8
                            }
                            return nghttp2_submit_request(
                                session, nil, nva.baseAddress, count, &provider, userData)
                        }
                    }
                }
            }
        }
        if streamID < 0 {
            call.complete(
                GRPCStatus(
                    code: .unavailable,
                    message: "cannot start stream: \(String(cString: nghttp2_strerror(streamID)))"))
            return
        }
        call.streamID = streamID
        calls[streamID] = call
        if let timeout = call.timeout {
            call.deadline = ContinuousClock.now + timeout
            loop.schedule(call)
        }
        loop.scheduleFlush(self)
    }

    func header(
        _ call: ClientCall, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>
    ) {
        func equals(_ literal: StaticString) -> Bool {
            name.count == literal.utf8CodeUnitCount
                && memcmp(name.baseAddress!, literal.utf8Start, name.count) == 0
        }
        if equals(":status") {
            call.httpStatus = Int(String(decoding: value, as: UTF8.self)) ?? 0
        } else if equals("grpc-status") {
            call.grpcStatus =
                Int32(String(decoding: value, as: UTF8.self))
                ?? Int32(GRPCStatus.Code.unknown.rawValue)
        } else if equals("grpc-message") {
            call.grpcMessage = PercentEncoding.decode(value)
        } else if equals("grpc-retry-pushback-ms") {
            call.pushback = Int(String(decoding: value, as: UTF8.self))
        }
    }

    func data(_ call: ClientCall, _ bytes: UnsafeRawBufferPointer) {
        if call.failure != nil { return }
        let error = call.reader.consume(bytes, limit: maxReceiveMessageBytes) { message in
            call.messageCount += 1
            switch call.kind {
            case .unary:
                if call.messageCount == 1 { call.response = message }
            case .streaming(let onMessage, _):
                onMessage(message)
            }
        }
        if let error {
            call.failure = error.status
            nghttp2_submit_rst_stream(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), call.streamID, NGHTTP2_CANCEL.rawValue)
        }
    }

    func streamClosed(_ streamID: Int32, errorCode: UInt32) {
        guard let call = calls.removeValue(forKey: streamID) else { return }
        if call.timerIndex >= 0 { loop.cancel(call) }
        call.complete(status(of: call, errorCode: errorCode))
    }

    private func status(of call: ClientCall, errorCode: UInt32) -> GRPCStatus {
        if let failure = call.failure { return failure }
        if call.httpStatus != 0 && call.httpStatus != 200 {
            var status = GRPCStatus.fromHTTPStatus(call.httpStatus)
            if let message = call.grpcMessage { status.message += ": \(message)" }
            return status
        }
        if let code = call.grpcStatus {
            if call.reader.isMidMessage {
                return GRPCStatus(code: .internalError, message: "response ended inside a message")
            }
            return GRPCStatus(
                code: GRPCStatus.Code(rawValue: code), message: call.grpcMessage ?? "",
                retryPushbackMilliseconds: call.pushback)
        }
        if errorCode == NGHTTP2_REFUSED_STREAM.rawValue {
            return GRPCStatus(code: .unavailable, message: "stream refused by the server")
        }
        if errorCode != 0 {
            return GRPCStatus(
                code: .unavailable,
                message: "stream reset by the server (HTTP/2 error \(errorCode))")
        }
        return GRPCStatus(code: .internalError, message: "response ended without grpc-status")
    }

    /// Adds a framed message (or the half-close, for nil) to a bidirectional call's output.
    func enqueue(_ call: ClientCall, message: [UInt8]?) {
        guard let outgoing = call.outgoing, !outgoing.closed, !call.finished else { return }
        if let message {
            var prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &prefix) {
                MessagePrefix.write(
                    length: message.count, to: $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            withUnsafeBytes(of: prefix) { outgoing.pending.append(contentsOf: $0) }
            outgoing.pending.append(contentsOf: message)
        } else {
            outgoing.closed = true
        }
        if outgoing.deferred, call.streamID > 0, !isClosed {
            outgoing.deferred = false
            nghttp2_session_resume_data(session, call.streamID)
        }
        loop.scheduleFlush(self)
    }

    func deadlinePassed(_ call: ClientCall) {
        guard !call.finished else { return }
        // The call stays in `calls` until nghttp2 closes the stream: it still points at it.
        nghttp2_submit_rst_stream(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), call.streamID, NGHTTP2_CANCEL.rawValue)
        loop.scheduleFlush(self)
        call.complete(GRPCStatus(code: .deadlineExceeded, message: "deadline exceeded"))
    }

    func cancel(_ call: ClientCall) {
        guard !call.finished else { return }
        if call.timerIndex >= 0 { loop.cancel(call) }
        if call.streamID > 0 {
            nghttp2_submit_rst_stream(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), call.streamID, NGHTTP2_CANCEL.rawValue)
            loop.scheduleFlush(self)
        }
        call.complete(GRPCStatus(code: .cancelled, message: "cancelled by the caller"))
    }

    func goAwayReceived() {
        goingAway = true
    }

    func goAway() {
        guard !isClosed else { return }
        goingAway = true
        nghttp2_submit_goaway(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, NGHTTP2_NO_ERROR.rawValue, nil, 0)
        closeWhenFlushed = true
        flush()
        close()
    }

    override func connectionDidClose() {
        let pending = calls.values
        calls = [:]
        for call in pending {
            if call.timerIndex >= 0 { loop.cancel(call) }
            call.complete(GRPCStatus(code: .unavailable, message: "connection closed"))
        }
    }
}

/// The client's nghttp2 callbacks table, created once.
enum ClientCallbacks {
    static let shared = SessionCallbacks.make { callbacks in
        nghttp2_session_callbacks_set_on_header_callback(callbacks, clientOnHeader)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, clientOnDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, clientOnStreamClose)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, clientOnFrameRecv)
    }
}

@inline(__always)
private func clientCore(_ userData: UnsafeMutableRawPointer?) -> ClientCore {
    Unmanaged<ClientCore>.fromOpaque(userData!).takeUnretainedValue()
}

@inline(__always)
private func clientCall(_ session: OpaquePointer?, _ streamID: Int32) -> ClientCall? {
    guard let pointer = nghttp2_session_get_stream_user_data(session, streamID) else { return nil }
    return Unmanaged<ClientCall>.fromOpaque(pointer).takeUnretainedValue()
}

private let clientOnHeader: nghttp2_on_header_callback = {
    session, frame, name, nameCount, value, valueCount, _, userData in
    let frame = frame!.pointee
    guard frame.hd.type == UInt8(NGHTTP2_HEADERS.rawValue),
        let call = clientCall(session, frame.hd.stream_id), !call.finished
    else { return 0 }
    clientCore(userData).header(
        call, name: UnsafeBufferPointer(start: name, count: nameCount),
        value: UnsafeBufferPointer(start: value, count: valueCount))
    return 0
}

private let clientOnDataChunk: nghttp2_on_data_chunk_recv_callback = {
    session, _, streamID, data, count, userData in
    if let call = clientCall(session, streamID), !call.finished {
        clientCore(userData).data(call, UnsafeRawBufferPointer(start: data, count: count))
    }
    return 0
}

private let clientOnStreamClose: nghttp2_on_stream_close_callback = {
    _, streamID, errorCode, userData in
    clientCore(userData).streamClosed(streamID, errorCode: errorCode)
    return 0
}

private let clientOnFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, userData in
    if frame!.pointee.hd.type == UInt8(NGHTTP2_GOAWAY.rawValue) {
        clientCore(userData).goAwayReceived()
    }
    return 0
}

private let clientReadRequest: nghttp2_data_source_read_callback = {
    _, _, buffer, length, flags, source, _ in
    let call = Unmanaged<ClientCall>.fromOpaque(source!.pointee.ptr).takeUnretainedValue()
    var written = 0
    if call.requestOffset < 0 {
        var prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &prefix) {
            MessagePrefix.write(
                length: call.request.count, to: $0.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        let take = min(-call.requestOffset, length)
        withUnsafeBytes(of: prefix) { raw in
            buffer!.update(
                from: raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + 5 + call.requestOffset,
                count: take)
        }
        call.requestOffset += take
        written = take
        if call.requestOffset < 0 { return written }
    }
    let take = min(call.request.count - call.requestOffset, length - written)
    if take > 0 {
        call.request.withUnsafeBufferPointer { bytes in
            (buffer! + written).update(from: bytes.baseAddress! + call.requestOffset, count: take)
        }
        call.requestOffset += take
        written += take
    }
    if call.requestOffset == call.request.count {
        flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        call.request = []
    }
    return written
}

private let clientReadStream: nghttp2_data_source_read_callback = {
    _, _, buffer, length, flags, source, _ in
    let call = Unmanaged<ClientCall>.fromOpaque(source!.pointee.ptr).takeUnretainedValue()
    guard let outgoing = call.outgoing else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    let take = min(outgoing.pending.count - outgoing.offset, length)
    if take > 0 {
        outgoing.pending.withUnsafeBufferPointer { bytes in
            buffer!.update(from: bytes.baseAddress! + outgoing.offset, count: take)
        }
        outgoing.offset += take
    }
    if outgoing.offset == outgoing.pending.count {
        outgoing.pending.removeAll(keepingCapacity: true)
        outgoing.offset = 0
        if outgoing.closed {
            flags!.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        } else if take == 0 {
            outgoing.deferred = true
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        }
    }
    return take
}
