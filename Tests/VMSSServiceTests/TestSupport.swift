import AzureModel
import Foundation
import GRPCTransport
import InstancesProto
import Reflection
import Synchronization
import VMSSCache
import VMSSLog
import VMSSService

/// A cloud in memory: per scale set, its VMs or the error every read of it fails with.
final class ScriptedBackend: InstanceBackend {
    private struct State {
        var scaleSets: [String: Result<[VirtualMachine], CloudError>] = [:]
        var calls = 0
    }

    private let state = Mutex(State())

    func set(_ name: String, _ result: Result<[VirtualMachine], CloudError>) {
        state.withLock { $0.scaleSets[name] = result }
    }

    var calls: Int { state.withLock { $0.calls } }

    func listScaleSetVirtualMachines(
        _ scaleSet: ScaleSetRef
    ) async throws(CloudError)
        -> [VirtualMachine]
    {
        let result = state.withLock { state in
            state.calls += 1
            return state.scaleSets[scaleSet.name]
        }
        switch result {
        case .success(let machines): return machines
        case .failure(let error): throw error
        case nil: throw .gone(code: "ParentResourceNotFound")
        }
    }

    func getVirtualMachine(_ vm: VirtualMachineRef) async throws(CloudError) -> VirtualMachine {
        state.withLock { $0.calls += 1 }
        throw .gone(code: "ResourceNotFound")
    }

    func listScaleSets(
        _ resourceGroup: ResourceGroupRef
    ) async throws(CloudError)
        -> [ScaleSetSummary]
    {
        state.withLock { $0.calls += 1 }
        return []
    }

    func privateIPAddresses(of instance: ScaleSetInstanceRef) async throws(CloudError) -> [String] {
        ["10.0.0.4"]
    }

    func privateIPAddresses(ofNetworkInterface id: String) async throws(CloudError) -> [String] {
        ["10.0.0.5"]
    }
}

/// Log lines kept in memory.
final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])

    func logger(verbosity: Int, format: Logger.Format = .text) -> Logger {
        Logger(verbosity: verbosity, format: format) { line in
            self.lines.withLock { $0.append(line) }
        }
    }

    var all: [String] { lines.withLock { $0 } }
}

let subscription = "sub-1"
let resourceGroup = "rg-1"

func providerID(_ scaleSet: String, _ instance: Int) -> String {
    "azure:///subscriptions/\(subscription)/resourceGroups/\(resourceGroup)/providers/"
        + "Microsoft.Compute/virtualMachineScaleSets/\(scaleSet)/virtualMachines/\(instance)"
}

func runningVM(_ id: Int, power: PowerState = .running) -> VirtualMachine {
    VirtualMachine(
        name: "pool_\(id)", instanceID: String(id), computerName: "pool00000\(id)",
        location: "westeurope", zones: ["2"], vmSize: "Standard_D4s_v5",
        provisioningState: .succeeded, powerState: power)
}

/// The services of vmssd over a memory cloud, served on a temporary socket.
final class ServiceHarness: Sendable {
    let backend = ScriptedBackend()
    let cache: InstanceCache
    let health: HealthService
    let server: GRPCServer
    let client: GRPCClientConnection
    let log = CapturedLog()
    let socketPath: String

    init(verbosity: Int = 0) throws {
        var configuration = CacheConfiguration()
        configuration.resourceGroup = ResourceGroupRef(
            subscriptionID: subscription, name: resourceGroup)
        cache = InstanceCache(backend: backend, configuration: configuration)
        health = HealthService(services: [InstancesService.name, AdminService.name])
        let instances = InstancesService(cache: cache, logger: log.logger(verbosity: verbosity))
        let backend = self.backend
        let admin = AdminService(cache: cache) {
            [ARMCallCount(operation: "list_vmss_vms", outcome: "ok", count: UInt64(backend.calls))]
        }
        let reflection = ReflectionService(index: ServiceDescriptors.index)
        var handlers = instances.handlers
        for extra in [admin.handlers, health.handlers, reflection.handlers] {
            handlers.merge(extra) { first, _ in first }
        }
        socketPath = "/tmp/vmssd-svc-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        var serverConfiguration = GRPCServerConfiguration(socketPath: socketPath)
        serverConfiguration.drainTimeout = .seconds(2)
        server = GRPCServer(configuration: serverConfiguration, handlers: handlers)
        try server.start()
        client = try GRPCClientConnection(socketPath: socketPath)
    }

    func stop() {
        client.close()
        server.shutdown()
    }

    /// One unary call; the status when it fails.
    func call(_ method: String, _ request: [UInt8]) async -> Result<[UInt8], GRPCStatus> {
        do {
            return .success(try await client.unary(path: method, request: request))
        } catch {
            return .failure(error)
        }
    }
}

let instancesPrefix = "/cloudprovider.instances.v1.Instances/"
let adminPrefix = "/cloudprovider.instances.v1.Admin/"

/// Polls `condition` for up to five seconds.
func eventually(_ condition: () -> Bool) async -> Bool {
    for _ in 0..<1_000 {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}
