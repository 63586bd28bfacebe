import Dispatch
import Synchronization
import Testing

@testable import GRPCTransport

#if canImport(Glibc)
    import Glibc
#endif

/// Runs that only happen when asked for through the environment: a server for interop checks
/// with other gRPC implementations, and a throughput measurement.
@Suite("manual runs")
struct ManualRunTests {
    static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// GRPC_TRANSPORT_SERVE=/tmp/x.sock GRPC_TRANSPORT_SERVE_SECONDS=30 serves the test handlers.
    @Test(
        "serve the test handlers for an outside client",
        .enabled(if: environment("GRPC_TRANSPORT_SERVE") != nil))
    func serve() async throws {
        let path = try #require(Self.environment("GRPC_TRANSPORT_SERVE"))
        let seconds = Int(Self.environment("GRPC_TRANSPORT_SERVE_SECONDS") ?? "30") ?? 30
        let server = try RunningServer(path: path)
        try await Task.sleep(for: .seconds(seconds))
        server.stop()
        for line in server.log.all { print(line) }
    }

    /// GRPC_TRANSPORT_BENCH=5 runs 16 concurrent echo calls on one connection for 5 seconds and
    /// prints calls/s and server CPU per call.
    @Test(
        "measure echo throughput and server CPU per call",
        .enabled(if: environment("GRPC_TRANSPORT_BENCH") != nil))
    func bench() async throws {
        let seconds = Double(Self.environment("GRPC_TRANSPORT_BENCH") ?? "5") ?? 5
        let concurrency = Int(Self.environment("GRPC_TRANSPORT_BENCH_CONCURRENCY") ?? "16") ?? 16
        let server = try RunningServer { $0.eventLoopCount = 1 }
        defer { server.stop() }
        let client = try server.client()
        defer { client.close() }
        let request = [UInt8](repeating: 0x42, count: 64)

        // Warm up.
        for _ in 0..<1000 { _ = try await client.unary(path: "/x.Y/Echo", request: request) }
        let completed = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let running = Atomic<Bool>(true)
        let startCPU = threadCPU(prefix: "grpc-server")
        let clientStartCPU = threadCPU(prefix: "grpc-client")
        let start = ContinuousClock.now
        let issue = LoopIssuer(client: client, request: request) { ok in
            if ok {
                completed.add(1, ordering: .relaxed)
            } else {
                failed.add(1, ordering: .relaxed)
            }
            return running.load(ordering: .relaxed)
        }
        for _ in 0..<concurrency { issue.next() }
        try await Task.sleep(for: .seconds(seconds))
        running.store(false, ordering: .relaxed)
        let elapsed = ContinuousClock.now - start
        let calls = completed.load(ordering: .relaxed)
        let serverCPU = threadCPU(prefix: "grpc-server") - startCPU
        let clientCPU = threadCPU(prefix: "grpc-client") - clientStartCPU
        try await Task.sleep(for: .milliseconds(200))

        let wall =
            Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = Double(calls) / wall
        print(
            "bench concurrency=\(concurrency) calls=\(calls)"
                + " failed=\(failed.load(ordering: .relaxed))"
                + " calls_per_s=\(Int(rate))"
                + " server_cpu_us_per_call=\(serverCPU / Double(calls) * 1e6)"
                + " client_cpu_us_per_call=\(clientCPU / Double(calls) * 1e6)")
        #expect(failed.load(ordering: .relaxed) == 0)
    }

    /// Seconds of CPU used so far by this process's threads whose name starts with `prefix`.
    private func threadCPU(prefix: String) -> Double {
        var total = 0.0
        guard let directory = opendir("/proc/self/task") else { return 0 }
        defer { closedir(directory) }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name.hasPrefix(".") { continue }
            guard let comm = readFile("/proc/self/task/\(name)/comm"), comm.hasPrefix(prefix),
                let stat = readFile("/proc/self/task/\(name)/stat"),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After the command: state is field 0, utime field 11, stime field 12.
            if fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) {
                total += (user + system) / ticks
            }
        }
        return total
    }

    private func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 1024)
        let count = fread(&buffer, 1, buffer.count - 1, file)
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Issues the next call from the completion of the previous one, on the connection's thread.
final class LoopIssuer: Sendable {
    let client: GRPCClientConnection
    let request: [UInt8]
    let onDone: @Sendable (Bool) -> Bool

    init(client: GRPCClientConnection, request: [UInt8], onDone: @escaping @Sendable (Bool) -> Bool)
    {
        self.client = client
        self.request = request
        self.onDone = onDone
    }

    func next() {
        client.startUnary(path: "/x.Y/Echo", request: request, timeout: nil) { result in
            let ok: Bool
            if case .success = result { ok = true } else { ok = false }
            if self.onDone(ok) { self.next() }
        }
    }
}
