import AzureModel
import Synchronization
import VMSSCache

/// A cloud held in memory: counts every call per operation, can fail every call with a chosen
/// error, and can hold calls in the air until released.
final class MemoryBackend: InstanceBackend {
    enum Operation: Hashable {
        case listVMs, getVM, listScaleSets, instanceIPs, interfaceIPs
    }

    struct Cloud {
        var scaleSets: [ScaleSetRef: [VirtualMachine]] = [:]
        var machines: [VirtualMachineRef: VirtualMachine] = [:]
        var summaries: [ResourceGroupRef: [ScaleSetSummary]] = [:]
        var instanceIPs: [ScaleSetInstanceRef: [String]] = [:]
        var interfaceIPs: [String: [String]] = [:]
        /// Every call fails with this, when set.
        var failure: CloudError?
        /// Builds a scale set's VMs on each call instead of keeping them (for memory figures).
        var synthesize: (@Sendable (ScaleSetRef) -> [VirtualMachine])?
    }

    private struct State {
        var cloud = Cloud()
        var calls: [Operation: Int] = [:]
        var holding = false
        var parked: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func update(_ change: (inout Cloud) -> Void) {
        state.withLock { change(&$0.cloud) }
    }

    func calls(_ operation: Operation) -> Int {
        state.withLock { $0.calls[operation, default: 0] }
    }

    var totalCalls: Int {
        state.withLock { $0.calls.values.reduce(0, +) }
    }

    var parkedCalls: Int {
        state.withLock { $0.parked.count }
    }

    /// Calls from now on wait until `release()`.
    func hold() {
        state.withLock { $0.holding = true }
    }

    func release() {
        let parked = state.withLock { state in
            state.holding = false
            defer { state.parked = [] }
            return state.parked
        }
        for continuation in parked { continuation.resume() }
    }

    private func enter(_ operation: Operation) async throws(CloudError) -> Cloud {
        state.withLock { $0.calls[operation, default: 0] += 1 }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let parked = state.withLock { state in
                if state.holding { state.parked.append(continuation) }
                return state.holding
            }
            if !parked { continuation.resume() }
        }
        let cloud = state.withLock { $0.cloud }
        if let failure = cloud.failure { throw failure }
        return cloud
    }

    func listScaleSetVirtualMachines(_ scaleSet: ScaleSetRef) async throws(CloudError)
        -> [VirtualMachine]
    {
        let cloud = try await enter(.listVMs)
        if let synthesize = cloud.synthesize { return synthesize(scaleSet) }
        guard let machines = cloud.scaleSets[scaleSet] else {
            throw .gone(code: "ParentResourceNotFound")
        }
        return machines
    }

    func getVirtualMachine(_ vm: VirtualMachineRef) async throws(CloudError) -> VirtualMachine {
        let cloud = try await enter(.getVM)
        guard let machine = cloud.machines[vm] else { throw .gone(code: "ResourceNotFound") }
        return machine
    }

    func listScaleSets(_ resourceGroup: ResourceGroupRef) async throws(CloudError)
        -> [ScaleSetSummary]
    {
        let cloud = try await enter(.listScaleSets)
        guard let summaries = cloud.summaries[resourceGroup] else {
            throw .gone(code: "ResourceGroupNotFound")
        }
        return summaries
    }

    func privateIPAddresses(of instance: ScaleSetInstanceRef) async throws(CloudError) -> [String] {
        let cloud = try await enter(.instanceIPs)
        guard let ips = cloud.instanceIPs[instance] else { throw .gone(code: "ResourceNotFound") }
        return ips
    }

    func privateIPAddresses(ofNetworkInterface id: String) async throws(CloudError) -> [String] {
        let cloud = try await enter(.interfaceIPs)
        guard let ips = cloud.interfaceIPs[id] else { throw .gone(code: "ResourceNotFound") }
        return ips
    }
}

/// A clock the test moves by hand.
final class TestClock: Sendable {
    private let seconds = Mutex<Double>(1_700_000_000)

    var now: Double { seconds.withLock { $0 } }

    func advance(_ delta: Double) {
        seconds.withLock { $0 += delta }
    }
}

/// A cache over a memory backend and a test clock.
struct Fixture {
    let clock = TestClock()
    let backend = MemoryBackend()
    let cache: InstanceCache

    init(_ configure: (inout CacheConfiguration) -> Void = { _ in }) {
        var configuration = CacheConfiguration()
        configuration.resourceGroup = group
        configure(&configuration)
        let clock = self.clock
        cache = InstanceCache(backend: backend, configuration: configuration, now: { clock.now })
    }

    func exists(_ question: NodeQuestion) async -> (Result<Bool, VerdictFailure>, AnswerInfo) {
        await cache.instanceExists(question)
    }

    /// Waits until every background read has been stored.
    func settle() async {
        await eventually { cache.stats().readsInFlight == 0 }
    }
}

let group = ResourceGroupRef(subscriptionID: "Sub-1", name: "RG-Nodes")

func scaleSet(_ name: String) -> ScaleSetRef {
    ScaleSetRef(resourceGroup: group, name: name)
}

func node(_ scaleSet: ScaleSetRef, _ id: Int, createdAt: Double? = nil) -> NodeQuestion {
    let instance = ScaleSetInstanceRef(scaleSet: scaleSet, instanceID: String(id))
    return NodeQuestion(providerID: .scaleSetInstance(instance), createdAt: createdAt)
}

func machine(_ name: String) -> NodeQuestion {
    NodeQuestion(providerID: .virtualMachine(VirtualMachineRef(resourceGroup: group, name: name)))
}

/// A uniform scale set instance as ARM lists it, with computer name `<prefix><base36 id>`.
func instanceVM(
    _ id: Int,
    prefix: String = "node",
    provisioning: ProvisioningState? = .succeeded,
    power: PowerState? = .running,
    zones: [String] = [],
    faultDomain: Int? = nil
) -> VirtualMachine {
    VirtualMachine(
        name: "vmss_\(id)",
        instanceID: String(id),
        computerName: prefix + base36(id),
        location: "East US",
        zones: zones,
        vmSize: "Standard_D2s_v3",
        provisioningState: provisioning,
        powerState: power,
        platformFaultDomain: faultDomain
    )
}

func base36(_ value: Int) -> String {
    let digits = String(value, radix: 36)
    return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
}

/// Polls `condition` until it holds or five seconds pass.
func eventually(_ condition: () -> Bool) async {
    for _ in 0..<5_000 {
        if condition() { return }
        try? await Task.sleep(for: .milliseconds(1))
    }
}

/// Collects answers from many completions.
final class Answers<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])

    func append(_ value: Value) {
        values.withLock { $0.append(value) }
    }

    var all: [Value] { values.withLock { $0 } }
}

extension Result {
    var value: Success? { try? get() }
}
