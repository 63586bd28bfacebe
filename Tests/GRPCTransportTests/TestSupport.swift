import Dispatch
import Synchronization
import Testing

@testable import GRPCTransport

#if canImport(Glibc)
    import Glibc
#endif

/// A unique socket path under /tmp, short enough for sockaddr_un.
func temporarySocketPath(_ tag: String = "t") -> String {
    "/tmp/grpct-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
}

/// Collects log lines from the server under test.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])

    var sink: GRPCLogSink { { line in self.lines.withLock { $0.append(line) } } }
    var all: [String] { lines.withLock { $0 } }
}

/// Handlers used by the end-to-end tests.
enum TestHandlers {
    static func all() -> [String: RPCHandler] {
        [
            "/x.Y/Echo": .unary { request, _, responder in responder.succeed(request) },
            "/x.Y/LateEcho": .unary { request, _, responder in
                DispatchQueue.global().asyncAfter(
                    deadline: .now() + .milliseconds(Int.random(in: 1...20))
                ) {
                    responder.succeed(request)
                }
            },
            "/x.Y/Slow": .unary { request, context, responder in
                DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(10)) {
                    responder.succeed(request)
                }
            },
            "/x.Y/Hold": .unary { request, _, responder in
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(300)) {
                    responder.succeed(Array("held".utf8) + request)
                }
            },
            "/x.Y/Throttled": .unary { _, _, responder in
                responder.fail(
                    GRPCStatus(
                        code: .unavailable, message: "throttled: 100% busy, réessayez",
                        retryPushbackMilliseconds: 1500))
            },
            "/x.Y/Peer": .unary { _, context, responder in
                let text =
                    "\(context.path) uid=\(context.peerUID.map(String.init) ?? "nil") "
                    + "deadline=\(context.deadline != nil)"
                responder.succeed(Array(text.utf8))
            },
            "/x.Y/Count": .serverStreaming { request, _, responder in
                let count = Int(request.first ?? 0)
                DispatchQueue.global().async {
                    for index in 0..<count { responder.send([UInt8(index)]) }
                    responder.finish(.ok)
                }
            },
            "/x.Y/Forever": .serverStreaming { _, _, responder in
                responder.send([1])
                responder.onCancel { responder.finish(GRPCStatus(code: .cancelled)) }
            },
        ]
    }
}

/// A started server on a temporary socket, shut down by `stop()`.
struct RunningServer {
    let server: GRPCServer
    let path: String
    let log: LogLines

    init(
        path: String = temporarySocketPath(),
        handlers: [String: RPCHandler] = TestHandlers.all(),
        configure: (inout GRPCServerConfiguration) -> Void = { _ in }
    ) throws {
        var configuration = GRPCServerConfiguration(socketPath: path)
        configuration.drainTimeout = .seconds(5)
        configure(&configuration)
        log = LogLines()
        server = GRPCServer(configuration: configuration, handlers: handlers, logger: log.sink)
        self.path = path
        try server.start()
    }

    func client() throws -> GRPCClientConnection {
        try GRPCClientConnection(socketPath: path)
    }

    func stop() {
        server.shutdown()
    }
}

func fileExists(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0
}
