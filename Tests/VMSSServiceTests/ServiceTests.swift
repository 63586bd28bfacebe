import AzureModel
import Foundation
import GRPCTransport
import InstancesProto
import Synchronization
import Testing
import VMSSCache
import VMSSService

@Suite("the Instances service over a real socket")
struct InstancesServiceTests {
    @Test("a listed instance exists and one of a deleted scale set does not")
    func existence() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        harness.backend.set("pool", .success([runningVM(3)]))

        let present = await harness.call(
            instancesPrefix + "InstanceExistsByProviderID",
            ProviderIDRequest(providerID: providerID("pool", 3)).serializedBytes())
        let deleted = await harness.call(
            instancesPrefix + "InstanceExists",
            NodeRequest(nodeName: "n", providerID: providerID("deleted", 0)).serializedBytes())

        #expect(try ExistsResponse(serializedBytes: present.get()).exists == true)
        #expect(try ExistsResponse(serializedBytes: deleted.get()).exists == false)
    }

    @Test("a deallocated instance is shut down and its metadata comes from the listing")
    func shutdownAndMetadata() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        harness.backend.set("pool", .success([runningVM(3), runningVM(4, power: .deallocated)]))

        let stopped = await harness.call(
            instancesPrefix + "InstanceShutdownByProviderID",
            ProviderIDRequest(providerID: providerID("pool", 4)).serializedBytes())
        let running = await harness.call(
            instancesPrefix + "InstanceShutdown",
            NodeRequest(providerID: providerID("pool", 3)).serializedBytes())
        let metadata = await harness.call(
            instancesPrefix + "InstanceMetadata",
            NodeRequest(providerID: providerID("pool", 3)).serializedBytes())

        #expect(try ShutdownResponse(serializedBytes: stopped.get()).shutdown == true)
        #expect(try ShutdownResponse(serializedBytes: running.get()).shutdown == false)
        let answer = try InstanceMetadataResponse(serializedBytes: metadata.get())
        #expect(answer.instanceType == "Standard_D4s_v5")
        #expect(answer.region == "westeurope")
        #expect(answer.providerID.lowercased() == providerID("pool", 3).lowercased())
    }

    /// A failed verdict and the status a client sees for it.
    struct FailureCase: Sendable, CustomTestStringConvertible {
        let name: String
        let method: String
        let request: [UInt8]
        let cloud: Result<[VirtualMachine], CloudError>
        let code: GRPCStatus.Code
        let pushback: ClosedRange<Int>?
        var testDescription: String { name }
    }

    static let failures: [FailureCase] = [
        FailureCase(
            name: "a malformed Azure provider ID is INVALID_ARGUMENT",
            method: "InstanceExistsByProviderID",
            request: ProviderIDRequest(providerID: "azure://no-third-slash").serializedBytes(),
            cloud: .success([]), code: .invalidArgument, pushback: nil),
        FailureCase(
            name: "a node with neither provider ID nor name is FAILED_PRECONDITION",
            method: "InstanceExists", request: NodeRequest().serializedBytes(),
            cloud: .success([]), code: .failedPrecondition, pushback: nil),
        FailureCase(
            name: "metadata of an instance missing from its listing is NOT_FOUND",
            method: "InstanceMetadata",
            request: NodeRequest(providerID: providerID("pool", 9)).serializedBytes(),
            cloud: .success([runningVM(3)]), code: .notFound, pushback: nil),
        FailureCase(
            name: "a throttled cloud is UNAVAILABLE with a retry pushback",
            method: "InstanceExistsByProviderID",
            request: ProviderIDRequest(providerID: providerID("pool", 3)).serializedBytes(),
            cloud: .failure(.throttled(until: Date().timeIntervalSince1970 + 30)),
            code: .unavailable, pushback: 20_000...30_000),
        FailureCase(
            name: "a failing cloud is UNAVAILABLE, never false",
            method: "InstanceExistsByProviderID",
            request: ProviderIDRequest(providerID: providerID("pool", 3)).serializedBytes(),
            cloud: .failure(.transient("HTTP 503")), code: .unavailable, pushback: nil),
    ]

    @Test("each failed verdict maps to its status", arguments: failures)
    func statusMapping(_ failure: FailureCase) async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        harness.backend.set("pool", failure.cloud)

        let result = await harness.call(instancesPrefix + failure.method, failure.request)

        guard case .failure(let status) = result else {
            Issue.record("expected \(failure.code), got an answer")
            return
        }
        #expect(status.code == failure.code)
        #expect(!status.message.isEmpty)
        if let pushback = failure.pushback {
            let value = try #require(status.retryPushbackMilliseconds)
            #expect(pushback.contains(value))
        } else {
            #expect(status.retryPushbackMilliseconds == nil)
        }
    }

    @Test("a batch answers each ID with its own verdict or status code")
    func batch() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        harness.backend.set("pool", .success([runningVM(3)]))
        harness.backend.set("busy", .failure(.transient("HTTP 500")))
        let ids = [
            providerID("pool", 3), providerID("deleted", 1), "azure://broken",
            providerID("busy", 0), providerID("pool", 3),
        ]

        let result = await harness.call(
            instancesPrefix + "InstancesExist",
            InstancesExistRequest(providerIDs: ids).serializedBytes())

        let verdicts = try InstancesExistResponse(serializedBytes: result.get()).verdicts
        #expect(verdicts.map(\.providerID) == ids)
        #expect(verdicts.map(\.code) == [0, 0, 3, 14, 0])
        #expect(verdicts.map(\.exists) == [true, false, false, false, true])
        #expect(verdicts[2].message.contains("three slashes"))
    }

    @Test("a node name longer than Kubernetes allows is refused, and logged only in part")
    func overlongNodeName() async throws {
        let harness = try ServiceHarness(verbosity: 2)
        defer { harness.stop() }
        let name = String(repeating: "z", count: 70_000)

        let result = await harness.call(
            instancesPrefix + "InstanceMetadata", NodeRequest(nodeName: name).serializedBytes())

        guard case .failure(let status) = result else {
            Issue.record("an overlong node name was answered")
            return
        }
        #expect(status.code == .invalidArgument)
        #expect(status.message.contains("at most 253"))
        #expect(status.message.utf8.count < 200)
        #expect(harness.backend.calls == 0)
        #expect(await eventually { !harness.log.all.isEmpty })
        #expect(harness.log.all.allSatisfy { $0.utf8.count < 4096 })
    }

    @Test("an empty batch answers an empty list")
    func emptyBatch() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }

        let result = await harness.call(
            instancesPrefix + "InstancesExist",
            InstancesExistRequest(providerIDs: []).serializedBytes())

        #expect(try InstancesExistResponse(serializedBytes: result.get()).verdicts.isEmpty)
    }

    static let methods = [
        instancesPrefix + "InstanceExistsByProviderID",
        instancesPrefix + "InstanceShutdownByProviderID",
        instancesPrefix + "InstanceExists", instancesPrefix + "InstanceShutdown",
        instancesPrefix + "InstanceMetadata", instancesPrefix + "InstancesExist",
        adminPrefix + "Stats", adminPrefix + "Invalidate", "/grpc.health.v1.Health/Check",
    ]

    @Test("request bytes that are not the method's message answer INTERNAL", arguments: methods)
    func malformedRequest(_ method: String) async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }

        // Field 1 as a length-delimited value claiming 100 bytes that are not there.
        let result = await harness.call(method, [0x0A, 100, 1, 2])

        guard case .failure(let status) = result else {
            Issue.record("\(method) accepted malformed bytes")
            return
        }
        #expect(status.code == .internalError)
        #expect(status.message.hasPrefix("request is not a valid"))
        #expect(harness.backend.calls == 0)
    }

    @Test("at -v=2 each call logs its verdict, cache outcome and ARM calls")
    func requestLog() async throws {
        let harness = try ServiceHarness(verbosity: 2)
        defer { harness.stop() }
        harness.backend.set("pool", .success([runningVM(3)]))
        let request = ProviderIDRequest(providerID: providerID("pool", 3)).serializedBytes()

        _ = await harness.call(instancesPrefix + "InstanceExistsByProviderID", request)
        _ = await harness.call(instancesPrefix + "InstanceExistsByProviderID", request)

        let lines = harness.log.all.filter { $0.contains(" rpc ") }
        try #require(lines.count == 2)
        for field in ["method=InstanceExistsByProviderID", "verdict=exists=true", "duration_us="] {
            #expect(lines.allSatisfy { $0.contains(field) })
        }
        #expect(lines[0].contains("cache=miss") && lines[0].contains("arm_calls=1"))
        #expect(lines[1].contains("cache=hit") && lines[1].contains("arm_calls=0"))
        #expect(lines[0].contains("provider_id=\(providerID("pool", 3))"))
    }
}

@Suite("the Admin service over a real socket")
struct AdminServiceTests {
    @Test("stats count hits and misses and carry the ARM call counts")
    func stats() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        harness.backend.set("pool", .success([runningVM(3)]))
        let request = ProviderIDRequest(providerID: providerID("pool", 3)).serializedBytes()
        for _ in 0..<3 {
            _ = await harness.call(instancesPrefix + "InstanceExistsByProviderID", request)
        }

        let stats = try StatsResponse(
            serializedBytes: await harness.call(
                adminPrefix + "Stats", StatsRequest().serializedBytes()
            ).get())

        #expect(stats.misses == 1)
        #expect(stats.hits == 2)
        #expect(stats.entries >= 1)
        #expect(
            stats.armCalls == [ARMCallCount(operation: "list_vmss_vms", outcome: "ok", count: 1)])
    }

    @Test("invalidating a scale set makes the next question read it again")
    func invalidate() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        harness.backend.set("pool", .success([runningVM(3)]))
        let request = ProviderIDRequest(providerID: providerID("pool", 3)).serializedBytes()
        _ = await harness.call(instancesPrefix + "InstanceExistsByProviderID", request)

        let one = await harness.call(
            adminPrefix + "Invalidate",
            InvalidateRequest(
                subscriptionID: subscription, resourceGroup: resourceGroup, scaleSet: "pool"
            )
            .serializedBytes())
        _ = await harness.call(instancesPrefix + "InstanceExistsByProviderID", request)
        let all = await harness.call(
            adminPrefix + "Invalidate", InvalidateRequest().serializedBytes())
        let partial = await harness.call(
            adminPrefix + "Invalidate",
            InvalidateRequest(subscriptionID: subscription).serializedBytes())

        #expect(try InvalidateResponse(serializedBytes: one.get()).removed == 1)
        #expect(harness.backend.calls == 2)
        #expect(try InvalidateResponse(serializedBytes: all.get()).removed >= 1)
        #expect(throws: GRPCStatus.self) { try partial.get() }
        if case .failure(let status) = partial { #expect(status.code == .invalidArgument) }
    }
}

@Suite("the Health service over a real socket")
struct HealthServiceTests {
    static func check(
        _ harness: ServiceHarness, _ service: String
    ) async -> Result<ServingStatus, GRPCStatus> {
        await harness.call(
            "/grpc.health.v1.Health/Check", HealthCheckRequest(service: service).serializedBytes()
        ).flatMap { bytes in
            guard let response = try? HealthCheckResponse(serializedBytes: bytes) else {
                return .failure(GRPCStatus(code: .internalError))
            }
            return .success(response.status)
        }
    }

    @Test("Check follows the status: NOT_SERVING, then SERVING; an unknown service is NOT_FOUND")
    func check() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }

        let before = await Self.check(harness, "")
        harness.health.setStatus(.serving)
        let server = await Self.check(harness, "")
        let instances = await Self.check(harness, InstancesService.name)
        let unknown = await Self.check(harness, "no.Such")

        #expect(try before.get() == .notServing)
        #expect(try server.get() == .serving)
        #expect(try instances.get() == .serving)
        #expect(throws: GRPCStatus.self) { try unknown.get() }
        if case .failure(let status) = unknown { #expect(status.code == .notFound) }
    }

    @Test("Watch sends the current status, then every change")
    func watch() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        let seen = Mutex<[ServingStatus]>([])
        let client = harness.client

        let watcher = Task {
            try await client.serverStreaming(
                path: "/grpc.health.v1.Health/Watch",
                request: HealthCheckRequest(service: "").serializedBytes()
            ) { bytes in
                if let response = try? HealthCheckResponse(serializedBytes: bytes) {
                    seen.withLock { $0.append(response.status) }
                }
            }
        }
        let first = await eventually { seen.withLock { $0.count } == 1 }
        harness.health.setStatus(.serving)
        let second = await eventually { seen.withLock { $0.count } == 2 }
        harness.health.setStatus(.serving)  // no change, no message
        harness.health.setStatus(.notServing)
        let third = await eventually { seen.withLock { $0.count } == 3 }
        watcher.cancel()
        _ = await watcher.result

        #expect(first && second && third)
        #expect(seen.withLock { $0 } == [.notServing, .serving, .notServing])
    }
}
