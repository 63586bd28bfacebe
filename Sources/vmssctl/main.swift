import Foundation
import GRPCTransport
import InstancesProto

/// `vmssctl`: asks a running `vmssd` one question and prints the answer for people and scripts.
///
/// Exit codes: 0 when the answer is yes (exists, shut down, serving) or the command succeeded;
/// 1 when the answer is no; 2 for a usage error; 3 when the call failed (status on stderr).
let usage = """
    usage: vmssctl --socket PATH [--timeout SECONDS] COMMAND [ARGS]

    commands:
      exists PROVIDER-ID          does the instance exist? prints true or false
      shutdown PROVIDER-ID        is the instance shut down? prints true or false
      metadata PROVIDER-ID        prints the instance's metadata as JSON
      metadata --node NAME        the same, found by node name
      exists-all PROVIDER-ID...   one line per ID: ID, true/false/unknown, status
      health [SERVICE]            prints SERVING, NOT_SERVING or SERVICE_UNKNOWN
      stats                       prints the cache's counters and ARM calls
      invalidate [SUB RG VMSS]    forgets one scale set, or everything
      bench [--connections N] [--concurrency N] [--seconds S] [--warmup S]
            [--method M] [--server-pid PID] (--provider-id ID)... | --provider-ids-file F
                                  closed-loop load; prints calls/s and p50/p99 as JSON, and
                                  with --server-pid the server's CPU per call and RSS

    exit codes: 0 yes or done, 1 no, 2 usage error, 3 the call failed
    """

enum Exit: Int32 {
    case yes = 0, no = 1, usage = 2, failed = 3
}

func fail(_ message: String, _ code: Exit) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(code.rawValue)
}

/// Prints what was wrong on one line, then the usage text, and exits 2.
func usageError(_ problem: String) -> Never {
    fail("vmssctl: \(problem)\n\(usage)", .usage)
}

/// The stderr line for a socket that cannot be reached: shaped like any failed call
/// (`error: CODE: message`), so scripts read one kind of error line.
func connectFailure(_ socketPath: String, _ error: any Error) -> String {
    var reason = "\(error)"
    if let error = error as? TransportError, error.errno != 0 {
        reason = "\(String(cString: strerror(error.errno))) (errno \(error.errno))"
    }
    return "error: UNAVAILABLE: cannot connect to \(socketPath): \(reason)"
}

func jsonString(_ text: String) -> String {
    let data = try! JSONSerialization.data(
        withJSONObject: [text], options: [.withoutEscapingSlashes])
    return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
}

var arguments = Array(CommandLine.arguments.dropFirst())
var socketPath = ProcessInfo.processInfo.environment["VMSSD_SOCKET"] ?? ""
var timeout: Duration = .seconds(30)
while let first = arguments.first, first.hasPrefix("--") {
    arguments.removeFirst()
    let (name, inline) = first.contains("=")
        ? (
            String(first.prefix(while: { $0 != "=" })),
            String(first.drop(while: { $0 != "=" }).dropFirst())
        )
        : (first, nil)
    if name == "--help" {
        print(usage)
        exit(Exit.yes.rawValue)
    }
    guard let value = inline ?? (arguments.isEmpty ? nil : arguments.removeFirst()) else {
        usageError("\(name) needs a value")
    }
    switch name {
    case "--socket": socketPath = value
    case "--timeout":
        guard let seconds = Double(value), seconds > 0 else {
            usageError("bad --timeout \(value)")
        }
        timeout = .milliseconds(Int64(seconds * 1000))
    default: usageError("unknown flag \(name)")
    }
}
guard !socketPath.isEmpty else { usageError("--socket is required") }
guard let command = arguments.first else { usageError("missing COMMAND") }
let rest = Array(arguments.dropFirst())

if command == "bench" {
    do {
        exit(runBench(socketPath: socketPath, plan: try BenchPlan(arguments: rest)))
    } catch {
        usageError("bench: \(error)")
    }
}

/// Checks the argument count of `command` before anything is sent, so a mistyped command line
/// never becomes a question about the wrong thing (`metadata --node` asking for ID "--node").
func checkArguments(_ command: String, _ rest: [String]) {
    func expect(_ allowed: [Int], _ shape: String) {
        if allowed.contains(rest.count) { return }
        let problem =
            rest.count < allowed.min()! ? "missing argument"
            : rest.count > allowed.max()! ? "extra argument" : "wrong number of arguments"
        let usage = shape.isEmpty ? command : "\(command) \(shape)"
        usageError("\(command): \(problem), expected: \(usage)")
    }
    switch command {
    case "exists", "shutdown": expect([1], "PROVIDER-ID")
    case "metadata":
        if rest.first == "--node" {
            expect([2], "--node NAME")
        } else {
            expect([1], "PROVIDER-ID")
            if rest[0].hasPrefix("--") { usageError("metadata: unknown flag \(rest[0])") }
        }
    case "exists-all":
        if rest.isEmpty {
            usageError("exists-all: missing argument, expected: exists-all PROVIDER-ID...")
        }
    case "health": expect([0, 1], "[SERVICE]")
    case "stats": expect([0], "")
    case "invalidate": expect([0, 3], "[SUB RG VMSS]")
    default: usageError("unknown command \(command)")
    }
}
checkArguments(command, rest)

let connection: GRPCClientConnection
do {
    connection = try GRPCClientConnection(socketPath: socketPath)
} catch {
    fail(connectFailure(socketPath, error), .failed)
}

func call<Response: ProtoMessage>(
    _ path: String, _ request: some ProtoMessage, as: Response.Type
) async -> Response {
    do {
        let bytes = try await connection.unary(
            path: path, request: request.serializedBytes(), timeout: timeout)
        return try Response(serializedBytes: bytes)
    } catch let status as GRPCStatus {
        var line = "error: \(status.code.description): \(status.message)"
        if let pushback = status.retryPushbackMilliseconds {
            line += " (retry in \(pushback) ms)"
        }
        fail(line, .failed)
    } catch {
        fail("error: \(error)", .failed)
    }
}

let instances = "/cloudprovider.instances.v1.Instances/"
switch (command, rest.count) {
case ("exists", 1):
    let response = await call(
        instances + "InstanceExistsByProviderID", ProviderIDRequest(providerID: rest[0]),
        as: ExistsResponse.self)
    print(response.exists)
    exit(response.exists ? Exit.yes.rawValue : Exit.no.rawValue)
case ("shutdown", 1):
    let response = await call(
        instances + "InstanceShutdownByProviderID", ProviderIDRequest(providerID: rest[0]),
        as: ShutdownResponse.self)
    print(response.shutdown)
    exit(response.shutdown ? Exit.yes.rawValue : Exit.no.rawValue)
case ("metadata", 1), ("metadata", 2):
    let request = rest.count == 2
        ? NodeRequest(nodeName: rest[1]) : NodeRequest(providerID: rest[0])
    let response = await call(
        instances + "InstanceMetadata", request, as: InstanceMetadataResponse.self)
    let addresses = response.nodeAddresses.map {
        "{\"type\":\(jsonString($0.type)),\"address\":\(jsonString($0.address))}"
    }
    print("""
        {"providerID":\(jsonString(response.providerID)),\
        "instanceType":\(jsonString(response.instanceType)),\
        "zone":\(jsonString(response.zone)),"region":\(jsonString(response.region)),\
        "nodeAddresses":[\(addresses.joined(separator: ","))]}
        """)
case ("exists-all", _) where !rest.isEmpty:
    let response = await call(
        instances + "InstancesExist", InstancesExistRequest(providerIDs: rest),
        as: InstancesExistResponse.self)
    for verdict in response.verdicts {
        let status = GRPCStatus.Code(rawValue: verdict.code).description
        let message = verdict.message.isEmpty ? "" : " \(verdict.message)"
        // A failed verdict carries no answer: "false" there would read as "gone" to a script.
        let answer = verdict.code == 0 ? String(verdict.exists) : "unknown"
        print("\(verdict.providerID) \(answer) \(status)\(message)")
    }
case ("health", 0), ("health", 1):
    let response = await call(
        "/grpc.health.v1.Health/Check", HealthCheckRequest(service: rest.first ?? ""),
        as: HealthCheckResponse.self)
    let names: [ServingStatus: String] = [
        .unknown: "UNKNOWN", .serving: "SERVING", .notServing: "NOT_SERVING",
        .serviceUnknown: "SERVICE_UNKNOWN",
    ]
    print(names[response.status] ?? "UNKNOWN")
    exit(response.status == .serving ? Exit.yes.rawValue : Exit.no.rawValue)
case ("stats", 0):
    let stats = await call(
        "/cloudprovider.instances.v1.Admin/Stats", StatsRequest(), as: StatsResponse.self)
    print("hits \(stats.hits)")
    print("misses \(stats.misses)")
    print("gone_hits \(stats.goneHits)")
    print("coalesced_waiters \(stats.coalescedWaiters)")
    print("refreshes \(stats.refreshes)")
    print("stale_serves \(stats.staleServes)")
    print("entries \(stats.entries)")
    for call in stats.armCalls {
        let labels = "operation=\"\(call.operation)\",outcome=\"\(call.outcome)\""
        print("arm_calls{\(labels)} \(call.count)")
    }
case ("invalidate", 0), ("invalidate", 3):
    let request = rest.isEmpty
        ? InvalidateRequest()
        : InvalidateRequest(subscriptionID: rest[0], resourceGroup: rest[1], scaleSet: rest[2])
    let response = await call(
        "/cloudprovider.instances.v1.Admin/Invalidate", request, as: InvalidateResponse.self)
    print("removed \(response.removed)")
default:
    usageError("unknown command \(command)")  // checkArguments let nothing else through
}
exit(Exit.yes.rawValue)
