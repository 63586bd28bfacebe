import Foundation
import GRPCTransport
import InstancesProto
import Synchronization

/// A closed-loop load generator: each of `concurrency` slots on each connection sends a call as
/// soon as its previous one is answered, until the duration has passed.
struct BenchPlan {
    var connections = 1
    var concurrency = 16
    var seconds = 5.0
    var warmupSeconds = 1.0
    var method = "InstanceExistsByProviderID"
    var providerIDs: [String] = []
    /// A server process whose CPU time and RSS are read at the start and end of the measured
    /// window, so the figures cover exactly the calls counted (warm-up excluded).
    var serverPID: Int32?

    init(arguments: [String]) throws(BenchError) {
        var remaining = arguments[...]
        while let flag = remaining.popFirst() {
            guard let value = remaining.popFirst() else {
                throw BenchError("\(flag) needs a value")
            }
            switch flag {
            case "--connections": connections = try Self.positive(value, flag)
            case "--concurrency": concurrency = try Self.positive(value, flag)
            case "--seconds": seconds = Double(value) ?? 0
            case "--warmup": warmupSeconds = Double(value) ?? 0
            case "--method": method = value
            case "--provider-id": providerIDs.append(value)
            case "--server-pid":
                guard let pid = Int32(value), pid > 0 else {
                    throw BenchError("--server-pid must be a process ID")
                }
                serverPID = pid
            case "--provider-ids-file":
                guard let text = try? String(contentsOfFile: value, encoding: .utf8) else {
                    throw BenchError("cannot read \(value)")
                }
                providerIDs += text.split(separator: "\n").map(String.init)
            default: throw BenchError("unknown bench flag \(flag)")
            }
        }
        guard seconds > 0 else { throw BenchError("--seconds must be positive") }
        guard !providerIDs.isEmpty else { throw BenchError("give --provider-id or a file") }
        guard ["InstanceExistsByProviderID", "InstanceShutdownByProviderID"].contains(method) else {
            throw BenchError("--method must be InstanceExistsByProviderID or ...Shutdown...")
        }
    }

    private static func positive(_ text: String, _ flag: String) throws(BenchError) -> Int {
        guard let value = Int(text), value > 0 else { throw BenchError("\(flag) must be > 0") }
        return value
    }
}

/// CPU time (user + system) and resident set size of one process, from /proc.
struct ProcessSample {
    var cpuMicroseconds: Int
    var rssBytes: Int

    /// Reads /proc/PID/stat (utime and stime, in clock ticks) and /proc/PID/statm; nil when the
    /// process is gone or the files cannot be read.
    init?(pid: Int32) {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let statm = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name: state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let pages = statm.split(separator: " ")
        guard fields.count > 13, pages.count > 1, let utime = Int(fields[11]),
            let stime = Int(fields[12]), let resident = Int(pages[1])
        else { return nil }
        let ticks = max(sysconf(Int32(_SC_CLK_TCK)), 1)
        cpuMicroseconds = (utime + stime) * 1_000_000 / ticks
        rssBytes = resident * max(sysconf(Int32(_SC_PAGESIZE)), 1)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Latencies in microseconds, one bucket per microsecond up to a second, merged at the end.
private final class Recorder: Sendable {
    private struct State {
        var buckets = [UInt32](repeating: 0, count: 1_000_001)
        var calls = 0
        var errors = 0
    }

    private let state = Mutex(State())

    func record(microseconds: Int, ok: Bool) {
        state.withLock { state in
            state.buckets[min(max(microseconds, 0), 1_000_000)] += 1
            state.calls += 1
            if !ok { state.errors += 1 }
        }
    }

    func reset() {
        state.withLock { $0 = State() }
    }

    func summary() -> (calls: Int, errors: Int, p50: Int, p99: Int) {
        state.withLock { state in
            func percentile(_ fraction: Double) -> Int {
                let target = Int((Double(state.calls) * fraction).rounded(.up))
                var seen = 0
                for (micros, count) in state.buckets.enumerated() {
                    seen += Int(count)
                    if seen >= max(target, 1) { return micros }
                }
                return 0
            }
            return (state.calls, state.errors, percentile(0.5), percentile(0.99))
        }
    }
}

private final class Slot: Sendable {
    let connection: GRPCClientConnection
    let path: String
    let requests: [[UInt8]]
    let recorder: Recorder
    let stopAt: Mutex<ContinuousClock.Instant>
    let done: DispatchGroup
    let next = Atomic<Int>(0)

    init(
        connection: GRPCClientConnection, path: String, requests: [[UInt8]], recorder: Recorder,
        stopAt: ContinuousClock.Instant, done: DispatchGroup
    ) {
        self.connection = connection
        self.path = path
        self.requests = requests
        self.recorder = recorder
        self.stopAt = Mutex(stopAt)
        self.done = done
    }

    func fire() {
        let started = ContinuousClock.now
        guard started < stopAt.withLock({ $0 }) else {
            done.leave()
            return
        }
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue % requests.count
        connection.startUnary(path: path, request: requests[index], timeout: nil) { result in
            let elapsed = ContinuousClock.now - started
            let micros =
                Int(elapsed.components.seconds) * 1_000_000
                + Int(elapsed.components.attoseconds / 1_000_000_000_000)
            if case .success = result {
                self.recorder.record(microseconds: micros, ok: true)
            } else {
                self.recorder.record(microseconds: micros, ok: false)
            }
            self.fire()
        }
    }
}

/// Runs the plan against the socket and prints one JSON object with the figures.
func runBench(socketPath: String, plan: BenchPlan) -> Int32 {
    let path = "/cloudprovider.instances.v1.Instances/\(plan.method)"
    let requests = plan.providerIDs.map { ProviderIDRequest(providerID: $0).serializedBytes() }
    let recorder = Recorder()
    var connections: [GRPCClientConnection] = []
    do {
        for _ in 0..<plan.connections {
            connections.append(try GRPCClientConnection(socketPath: socketPath))
        }
    } catch {
        FileHandle.standardError.write(Data((connectFailure(socketPath, error) + "\n").utf8))
        return 3
    }

    let clock = ContinuousClock()
    let start = clock.now
    let warmupEnd = start + .milliseconds(Int64(plan.warmupSeconds * 1000))
    let end = warmupEnd + .milliseconds(Int64(plan.seconds * 1000))
    let done = DispatchGroup()
    for connection in connections {
        for _ in 0..<plan.concurrency {
            done.enter()
            let slot = Slot(
                connection: connection, path: path, requests: requests, recorder: recorder,
                stopAt: end, done: done)
            slot.fire()
        }
    }
    Thread.sleep(forTimeInterval: plan.warmupSeconds)
    recorder.reset()
    let serverBefore = plan.serverPID.flatMap(ProcessSample.init(pid:))
    let measuredStart = clock.now
    done.wait()
    let measured = clock.now - measuredStart
    let serverAfter = plan.serverPID.flatMap(ProcessSample.init(pid:))
    let seconds =
        Double(measured.components.seconds)
        + Double(measured.components.attoseconds) / 1e18
    for connection in connections {
        connection.close()
    }

    let summary = recorder.summary()
    var server = ""
    if let before = serverBefore, let after = serverAfter {
        let cpu = after.cpuMicroseconds - before.cpuMicroseconds
        let perCall = Double(cpu) / Double(max(summary.calls, 1))
        server = """
            ,"server_cpu_us":\(cpu),"server_cpu_us_per_call":\(perCall),\
            "server_rss_bytes":\(after.rssBytes)
            """
    }
    print(
        """
        {"client":"vmssctl","method":"\(plan.method)","connections":\(plan.connections),\
        "concurrency":\(plan.concurrency),"calls":\(summary.calls),"errors":\(summary.errors),\
        "seconds":\(seconds),"calls_per_second":\(Double(summary.calls) / seconds),\
        "p50_us":\(summary.p50),"p99_us":\(summary.p99)\(server)}
        """)
    _ = warmupEnd
    return summary.errors == 0 ? 0 : 3
}
