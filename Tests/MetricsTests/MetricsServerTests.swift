import Foundation
import Metrics
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP exchange's outcome as a client sees it.
struct Reply {
    let status: Int
    let contentType: String?
    let allow: String?
    let body: String
}

/// Sends one request over a fresh session, so no connection outlives the test.
func fetch(_ url: String, method: String = "GET", body: Data? = nil) async throws -> Reply {
    let session = URLSession(configuration: .ephemeral)
    defer { session.invalidateAndCancel() }
    var request = URLRequest(url: try #require(URL(string: url)))
    request.httpMethod = method
    request.httpBody = body
    request.timeoutInterval = 5
    let (data, response) = try await session.data(for: request)
    let http = try #require(response as? HTTPURLResponse)
    return Reply(
        status: http.statusCode,
        contentType: http.value(forHTTPHeaderField: "Content-Type"),
        allow: http.value(forHTTPHeaderField: "Allow"),
        body: String(decoding: data, as: UTF8.self))
}

@Suite("metrics HTTP server")
struct MetricsServerTests {
    static func start(
        ready: @escaping @Sendable () -> (Bool, String) = { (true, "") }
    ) throws -> MetricsServer {
        let metrics = RPCMetrics(methods: ["/cloudprovider.instances.v1.Instances/InstanceExists"])
        metrics.record(
            method: "/cloudprovider.instances.v1.Instances/InstanceExists", code: 0,
            seconds: 0.0003)
        return try MetricsServer(
            address: "127.0.0.1:0",
            render: {
                var page = PrometheusText()
                metrics.write(to: &page)
                return page.text
            },
            ready: ready)
    }

    @Test("a scrape of /metrics returns the page as Prometheus text 0.0.4")
    func scrapesMetrics() async throws {
        let server = try Self.start()
        defer { server.stop() }
        #expect(server.port != 0)

        let reply = try await fetch("http://127.0.0.1:\(server.port)/metrics")

        #expect(reply.status == 200)
        #expect(reply.contentType?.hasPrefix("text/plain; version=0.0.4") == true)
        #expect(reply.body.hasPrefix("# HELP vmssd_rpc_requests_total "))
        let method = "/cloudprovider.instances.v1.Instances/InstanceExists"
        #expect(reply.body.contains(#"requests_total{method="\#(method)",code="OK"} 1"#))
        #expect(reply.body.contains(#"seconds_bucket{method="\#(method)",le="0.0005"} 1"#))
    }

    @Test("/healthz answers 200 ok while the server runs")
    func healthz() async throws {
        let server = try Self.start(ready: { (false, "cache not warm") })
        defer { server.stop() }

        let reply = try await fetch("http://127.0.0.1:\(server.port)/healthz")

        #expect(reply.status == 200)
        #expect(reply.body == "ok")
    }

    @Test("/readyz answers 503 with the reason, then 200 once ready")
    func readyzFollowsReadiness() async throws {
        let isReady = Atomic<Bool>(false)
        let server = try Self.start(ready: {
            isReady.load(ordering: .relaxed) ? (true, "") : (false, "waiting for cloud config")
        })
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/readyz"

        let before = try await fetch(url)
        isReady.store(true, ordering: .relaxed)
        let after = try await fetch(url)

        #expect(before.status == 503)
        #expect(before.body == "waiting for cloud config")
        #expect(after.status == 200)
        #expect(after.body == "ok")
    }

    @Test("an unknown path is 404 and a query string does not change the path")
    func unknownPath() async throws {
        let server = try Self.start()
        defer { server.stop() }

        let missing = try await fetch("http://127.0.0.1:\(server.port)/metricsz")
        let withQuery = try await fetch("http://127.0.0.1:\(server.port)/healthz?verbose=1")

        #expect(missing.status == 404)
        #expect(withQuery.status == 200)
    }

    @Test("a POST, with or without a body, is 405 with Allow: GET, HEAD")
    func postIsRefused() async throws {
        let server = try Self.start()
        defer { server.stop() }
        let url = "http://127.0.0.1:\(server.port)/metrics"

        let empty = try await fetch(url, method: "POST")
        let withBody = try await fetch(
            url, method: "POST", body: Data(repeating: 65, count: 100_000))
        let stillServing = try await fetch(url)

        #expect(empty.status == 405)
        #expect(empty.allow == "GET, HEAD")
        #expect(withBody.status == 405)
        #expect(stillServing.status == 200)
    }

    @Test("HEAD answers like GET without a body")
    func headHasNoBody() throws {
        let server = try Self.start()
        defer { server.stop() }
        let client = try RawSocket(host: "127.0.0.1", port: server.port)

        client.send("HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let reply = try #require(client.readToEnd())

        #expect(reply.hasPrefix("HTTP/1.1 200"))
        #expect(reply.hasSuffix("\r\n\r\n"))
        #expect(!reply.contains("vmssd_rpc"))
    }

    @Test(
        "a malformed address is refused with a message naming it",
        arguments: [
            "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80a",
            "example.com:9464", "::1:9464", "[::1]9464", "[::1:9464", "[127.0.0.1]:9464",
            "999.0.0.1:9464", ":9464", "",
        ])
    func badAddress(address: String) {
        let error = #expect(throws: MetricsServerError.self) {
            try MetricsServer(address: address, render: { "" }, ready: { (true, "") })
        }
        #expect(error?.code == .invalidAddress)
        #expect(error?.message.contains("\"\(address)\"") == true)
    }

    @Test("a port already in use is a start error naming the address")
    func portInUse() throws {
        let first = try Self.start()
        defer { first.stop() }
        let address = "127.0.0.1:\(first.port)"

        let error = #expect(throws: MetricsServerError.self) {
            try MetricsServer(address: address, render: { "" }, ready: { (true, "") })
        }

        #expect(error?.code == .startFailed)
        #expect(error?.message.contains(address) == true)
        #expect(error?.message.contains("in use") == true, "\(String(describing: error))")
    }

    @Test("stop frees the port for a second server")
    func stopFreesPort() async throws {
        let first = try Self.start()
        let port = first.port
        _ = try await fetch("http://127.0.0.1:\(port)/healthz")

        first.stop()
        first.stop()
        let second = try MetricsServer(
            address: "127.0.0.1:\(port)", render: { "second\n" }, ready: { (true, "") })
        defer { second.stop() }
        let reply = try await fetch("http://127.0.0.1:\(port)/metrics")

        #expect(second.port == port)
        #expect(reply.body == "second\n")
    }

    @Test("localhost and [::1] bind loopback only")
    func loopbackHosts() async throws {
        let v4 = try MetricsServer(address: "localhost:0", render: { "" }, ready: { (true, "") })
        defer { v4.stop() }
        let v6 = try MetricsServer(address: "[::1]:0", render: { "" }, ready: { (true, "") })
        defer { v6.stop() }

        let v4Reply = try await fetch("http://127.0.0.1:\(v4.port)/healthz")
        let v6Socket = try RawSocket(host: "::1", port: v6.port)
        v6Socket.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let v6Reply = try #require(v6Socket.readToEnd())

        #expect(v4Reply.status == 200)
        #expect(v6Reply.hasPrefix("HTTP/1.1 200"))
        #expect(v6Reply.hasSuffix("\r\n\r\nok"))
        #expect(throws: RawSocket.Failure.self) { try RawSocket(host: "::1", port: v4.port) }
    }

    @Test("a client that sends nothing is disconnected after the idle timeout")
    func idleClientIsDropped() throws {
        let server = try MetricsServer(
            address: "127.0.0.1:0", idleTimeoutSeconds: 1, render: { "" }, ready: { (true, "") })
        defer { server.stop() }
        let idle = try RawSocket(host: "127.0.0.1", port: server.port, timeoutSeconds: 5)
        idle.send("GET /metrics HTTP/1.1\r\n")

        let clock = ContinuousClock()
        let start = clock.now
        let received = idle.readToEnd()

        #expect(received == "")
        #expect(clock.now - start < .seconds(4))
    }

    @Test("a client past the connection limit waits until a held connection ends")
    func connectionLimit() throws {
        let server = try MetricsServer(
            address: "127.0.0.1:0", connectionLimit: 2, render: { "" }, ready: { (true, "") })
        defer { server.stop() }
        let held = try (0..<2).map { _ in try RawSocket(host: "127.0.0.1", port: server.port) }
        for socket in held { socket.send("GET /healthz HTTP/1.1\r\n") }

        let extra = try RawSocket(host: "127.0.0.1", port: server.port, timeoutSeconds: 1)
        extra.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let whileFull = extra.readToEnd()
        held[0].send("Host: x\r\nConnection: close\r\n\r\n")
        let served = held[0].readToEnd()
        let afterwards = extra.readToEnd()

        #expect(whileFull == nil)
        #expect(served?.hasPrefix("HTTP/1.1 200") == true)
        #expect(afterwards?.hasPrefix("HTTP/1.1 200") == true)
    }

    @Test("a POST expecting 100 Continue is refused before its body is sent")
    func expectContinueIsRefusedEarly() throws {
        let server = try Self.start()
        defer { server.stop() }
        let client = try RawSocket(host: "127.0.0.1", port: server.port)

        client.send(
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n"
                + "Expect: 100-continue\r\n\r\n")
        let reply = client.readToEnd()

        #expect(reply?.hasPrefix("HTTP/1.1 405") == true)
        #expect(reply?.contains("100 Continue") == false)
    }
}
