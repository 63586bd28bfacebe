internal import CMicroHTTPD
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a `MetricsServer` could not start; `message` names the address it was given.
public struct MetricsServerError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, for callers that react differently to each.
    public enum Code: Sendable, Equatable {
        /// The address is not `HOST:PORT` with a literal or `localhost` host and a valid port.
        case invalidAddress
        /// The address is well formed but the server could not listen there (in use, no
        /// such local address, no permission).
        case startFailed
    }

    /// What went wrong.
    public let code: Code
    /// A sentence for the operator, naming the address.
    public let message: String

    /// The message.
    public var description: String { message }
}

/// Serves `GET /metrics`, `/healthz` and `/readyz` over HTTP/1.1 on one local address, using
/// libmicrohttpd and its own polling thread.
///
/// - `/metrics`: 200 with whatever `render` returns, as `text/plain; version=0.0.4`.
/// - `/healthz`: 200 `ok` for as long as the server runs.
/// - `/readyz`: 200 `ok` when `ready()` says so, otherwise 503 with its reason.
/// - Any other path: 404. Any method but GET (and HEAD, which HTTP requires alongside GET):
///   405 with an `Allow` header.
///
/// Connections are capped and an idle one is closed after a timeout, so slow or many clients
/// cannot hold the server. `render` and `ready` run on the server's thread, one request at a
/// time. The server stops on `stop()` or when the last reference goes away.
public final class MetricsServer: Sendable {
    /// The port the server listens on; the real one when the address asked for port 0.
    public let port: UInt16
    // The daemon handle is only passed to libmicrohttpd, which is thread-safe for the calls
    // made here; `stopped` makes sure it is stopped once.
    private nonisolated(unsafe) let daemon: OpaquePointer
    private let stopped = Atomic<Bool>(false)
    /// Retained for as long as the daemon may call back into it; released by `stop()`.
    private let handler: Unmanaged<Handler>
    // Written by the daemon's logger from its one thread, read only after a failed start, and
    // freed only once the daemon has stopped.
    private nonisolated(unsafe) let logBuffer: UnsafeMutablePointer<CChar>

    /// Starts serving on `address`.
    ///
    /// - Parameters:
    ///   - address: `HOST:PORT`, HOST an IPv4 literal (`127.0.0.1`), `localhost` (which means
    ///     127.0.0.1) or a bracketed IPv6 literal (`[::1]`); PORT 0 to 65535, 0 picking a free
    ///     one. Exactly this host is bound: `0.0.0.0` only when written out.
    ///   - connectionLimit: connections served at once; more are refused.
    ///   - idleTimeoutSeconds: a connection that sends nothing for this long is closed.
    ///   - render: the Prometheus page for `/metrics`.
    ///   - ready: whether the process is ready to serve, and if not, why.
    /// - Throws: `MetricsServerError` naming the address if it is malformed or cannot be bound.
    public init(
        address: String,
        connectionLimit: Int = 16,
        idleTimeoutSeconds: Int = 10,
        render: @escaping @Sendable () -> String,
        ready: @escaping @Sendable () -> (Bool, String)
    ) throws(MetricsServerError) {
        precondition(connectionLimit > 0 && idleTimeoutSeconds > 0, "limits must be positive")
        let endpoint = try Endpoint(parsing: address)
        let handler = Unmanaged.passRetained(Handler(render: render, ready: ready))
        let logBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CMHD_LOG_CAPACITY))
        logBuffer.initialize(repeating: 0, count: Int(CMHD_LOG_CAPACITY))

        var flags = MHD_USE_AUTO_INTERNAL_THREAD.rawValue
        if endpoint.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        let started = endpoint.withSocketAddress { socketAddress in
            cmhd_start_daemon(
                flags, socketAddress, UInt32(connectionLimit), UInt32(idleTimeoutSeconds),
                handleRequest, handler.toOpaque(), logBuffer)
        }

        guard let started else {
            let reason = logBuffer.pointee == 0 ? "unknown error" : String(cString: logBuffer)
            handler.release()
            logBuffer.deallocate()
            throw MetricsServerError(
                code: .startFailed,
                message: "cannot serve metrics on \(address): \(reason)")
        }
        let bound = cmhd_bound_port(started)
        self.port = bound != 0 ? bound : endpoint.port
        self.daemon = started
        self.handler = handler
        self.logBuffer = logBuffer
    }

    deinit {
        stop()
    }

    /// Stops listening, closes every connection and frees the port; waits for a request in
    /// progress to finish. Calling it again does nothing.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // Returns only after the daemon's thread has exited, so nothing calls back afterwards.
        MHD_stop_daemon(daemon)
        handler.release()
        logBuffer.deallocate()
    }
}

/// What the daemon's callback needs, reached through the context pointer.
private final class Handler: Sendable {
    let render: @Sendable () -> String
    let ready: @Sendable () -> (Bool, String)

    init(
        render: @escaping @Sendable () -> String,
        ready: @escaping @Sendable () -> (Bool, String)
    ) {
        self.render = render
        self.ready = ready
    }

    /// Status, content type and body for a request.
    func answer(method: String, path: String) -> (status: UInt32, type: String, body: String) {
        let known = path == "/metrics" || path == "/healthz" || path == "/readyz"
        guard known else { return (404, Self.plain, "not found\n") }
        guard method == "GET" || method == "HEAD" else {
            return (405, Self.plain, "method not allowed\n")
        }
        switch path {
        case "/metrics":
            return (200, "text/plain; version=0.0.4; charset=utf-8", render())
        case "/healthz":
            return (200, Self.plain, "ok")
        default:
            let (isReady, reason) = ready()
            return isReady ? (200, Self.plain, "ok") : (503, Self.plain, reason)
        }
    }

    static let plain = "text/plain; charset=utf-8"
}

/// The most request body discarded before answering; past it the answer goes out at once and
/// the connection is closed, so a huge upload costs little.
private let bodyDrainLimit = 1 << 20

/// The libmicrohttpd access handler: capture-free, finds its `Handler` through `context`.
///
/// `requestState` tells the calls for one request apart: `nil` on the first call, then 1 once
/// answered, or 2 plus the body bytes discarded so far while a body is being drained. A request
/// body is never used, but a refused POST is read to its end before the 405 goes out, so a
/// client still sending is not cut off with a reset. The answer to a GET or HEAD goes out on the
/// first call, as does a 405 when the client waits for `100 Continue` before sending its body.
private let handleRequest: MHD_AccessHandlerCallback = {
    context, connection, url, method, _, _, uploadSize, requestState in
    guard let context, let connection, let requestState, let uploadSize else { return .NO }
    let state = Int(bitPattern: requestState.pointee)
    if state == answeredState {
        uploadSize.pointee = 0
        return .YES
    }

    let handler = Unmanaged<Handler>.fromOpaque(context).takeUnretainedValue()
    let methodName = method.map { String(cString: $0) } ?? ""
    if state == 0 && methodName != "GET" && methodName != "HEAD"
        && MHD_lookup_connection_value(connection, .HEADER_KIND, "Expect") == nil
    {
        requestState.pointee = UnsafeMutableRawPointer(bitPattern: drainingState)
        return .YES
    }
    if state >= drainingState && uploadSize.pointee > 0 {
        let drained = state - drainingState + uploadSize.pointee
        uploadSize.pointee = 0
        if drained <= bodyDrainLimit {
            requestState.pointee = UnsafeMutableRawPointer(bitPattern: drainingState + drained)
            return .YES
        }
    }

    requestState.pointee = UnsafeMutableRawPointer(bitPattern: answeredState)
    let path = url.map { String(cString: $0) } ?? ""
    return respond(connection, handler.answer(method: methodName, path: path))
}

private let answeredState = 1
private let drainingState = 2

/// Queues `answer` on `connection`; libmicrohttpd copies the body.
private func respond(
    _ connection: OpaquePointer, _ answer: (status: UInt32, type: String, body: String)
) -> MHD_Result {
    var body = answer.body
    return body.withUTF8 { bytes in
        guard
            let response = MHD_create_response_from_buffer(
                bytes.count, UnsafeMutableRawPointer(mutating: bytes.baseAddress),
                .RESPMEM_MUST_COPY)
        else { return .NO }
        defer { MHD_destroy_response(response) }
        _ = MHD_add_response_header(response, "Content-Type", answer.type)
        _ = MHD_add_response_header(response, "Cache-Control", "no-store")
        if answer.status == 405 {
            _ = MHD_add_response_header(response, "Allow", "GET, HEAD")
        }
        return MHD_queue_response(connection, answer.status, response)
    }
}

/// A parsed `HOST:PORT`.
struct Endpoint: Equatable {
    /// The host as 4 or 16 bytes in network order.
    let hostBytes: [UInt8]
    let port: UInt16

    var isIPv6: Bool { hostBytes.count == 16 }

    /// Parses `address`, throwing an error that names it and says what is expected.
    init(parsing address: String) throws(MetricsServerError) {
        func invalid(_ why: String) -> MetricsServerError {
            MetricsServerError(
                code: .invalidAddress,
                message: "invalid metrics address \"\(address)\": \(why); expected HOST:PORT"
                    + " with HOST an IPv4 address, localhost or a bracketed IPv6 address")
        }

        let host: Substring
        let portText: Substring
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]") else { throw invalid("no closing ]") }
            host = address[address.index(after: address.startIndex)..<close]
            let rest = address[address.index(after: close)...]
            guard rest.hasPrefix(":") else { throw invalid("no port after ]") }
            portText = rest.dropFirst()
        } else {
            guard let colon = address.lastIndex(of: ":") else { throw invalid("no port") }
            host = address[..<colon]
            portText = address[address.index(after: colon)...]
            if host.contains(":") { throw invalid("an IPv6 address must be in brackets") }
        }

        guard !portText.isEmpty, portText.utf8.count <= 5,
            portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            let port = UInt16(portText)
        else { throw invalid("the port must be a number from 0 to 65535") }

        let isIPv6 = address.hasPrefix("[")
        let literal = host == "localhost" && !isIPv6 ? "127.0.0.1" : String(host)
        var bytes = [UInt8](repeating: 0, count: isIPv6 ? 16 : 4)
        let parsed = bytes.withUnsafeMutableBytes { buffer in
            inet_pton(isIPv6 ? AF_INET6 : AF_INET, literal, buffer.baseAddress)
        }
        guard parsed == 1 else {
            throw invalid(isIPv6 ? "not an IPv6 address" : "the host is not an IPv4 address")
        }
        self.hostBytes = bytes
        self.port = port
    }

    /// Calls `body` with a `sockaddr_in` or `sockaddr_in6` for this endpoint.
    func withSocketAddress<Result>(_ body: (UnsafePointer<sockaddr>) -> Result) -> Result {
        if isIPv6 {
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { target in
                target.copyBytes(from: hostBytes)
            }
            return withUnsafePointer(to: &socketAddress) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1, body)
            }
        }
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        withUnsafeMutableBytes(of: &socketAddress.sin_addr) { target in
            target.copyBytes(from: hostBytes)
        }
        return withUnsafePointer(to: &socketAddress) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1, body)
        }
    }
}
