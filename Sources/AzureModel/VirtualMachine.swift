/// What ARM says of a VM's `properties.provisioningState`.
public enum ProvisioningState: UInt8, Sendable {
    case succeeded, creating, updating, deleting, failed, migrating, canceled, other

    /// Reads ARM's spelling, in any casing; anything unknown is `.other`.
    public init(armValue: String) {
        switch armValue.lowercased() {
        case "succeeded": self = .succeeded
        case "creating": self = .creating
        case "updating": self = .updating
        case "deleting": self = .deleting
        case "failed": self = .failed
        case "migrating": self = .migrating
        case "canceled": self = .canceled
        default: self = .other
        }
    }
}

/// The `PowerState/...` status of a VM's instance view.
public enum PowerState: UInt8, Sendable {
    case starting, running, stopping, stopped, deallocating, deallocated, other

    /// Reads a status code such as `PowerState/running`; `nil` when it is not a power state.
    public init?(statusCode: String) {
        let prefix = "powerstate/"
        let lowered = statusCode.lowercased()
        guard lowered.hasPrefix(prefix) else { return nil }
        switch lowered.dropFirst(prefix.count) {
        case "starting": self = .starting
        case "running": self = .running
        case "stopping": self = .stopping
        case "stopped": self = .stopped
        case "deallocating": self = .deallocating
        case "deallocated": self = .deallocated
        default: self = .other
        }
    }

    /// Whether a VM in this state counts as shut down.
    public var isShutDown: Bool {
        switch self {
        case .stopped, .deallocating, .deallocated: true
        default: false
        }
    }
}

/// The fields of one VM that the verdicts and the metadata answer use, and nothing else.
public struct VirtualMachine: Sendable {
    /// The VM resource name (`<vmss>_<instanceId>` for a uniform scale set instance).
    public var name: String
    /// The uniform scale set instance ID; `nil` for a VM resource.
    public var instanceID: String?
    /// `properties.osProfile.computerName` (or the instance view's `computerName`).
    public var computerName: String?
    /// The region, as ARM spells it (`westus`, or a display form such as `West US`).
    public var location: String?
    /// The availability zones; empty when the VM has none.
    public var zones: [String]
    /// The VM size: `hardwareProfile.vmSize`, else the top-level `sku.name`.
    public var vmSize: String?
    /// `properties.provisioningState`; `nil` when absent.
    public var provisioningState: ProvisioningState?
    /// The power state from the instance view; `nil` when unknown.
    public var powerState: PowerState?
    /// `instanceView.platformFaultDomain`, when known.
    public var platformFaultDomain: Int?
    /// The ARM ID of the primary network interface (the first one when none is marked primary).
    public var primaryNetworkInterfaceID: String?

    public init(
        name: String,
        instanceID: String? = nil,
        computerName: String? = nil,
        location: String? = nil,
        zones: [String] = [],
        vmSize: String? = nil,
        provisioningState: ProvisioningState? = nil,
        powerState: PowerState? = nil,
        platformFaultDomain: Int? = nil,
        primaryNetworkInterfaceID: String? = nil
    ) {
        self.name = name
        self.instanceID = instanceID
        self.computerName = computerName
        self.location = location
        self.zones = zones
        self.vmSize = vmSize
        self.provisioningState = provisioningState
        self.powerState = powerState
        self.platformFaultDomain = platformFaultDomain
        self.primaryNetworkInterfaceID = primaryNetworkInterfaceID
    }
}

/// How a scale set orchestrates its instances.
public enum OrchestrationMode: UInt8, Sendable {
    /// Instances are scale set VMs, addressed by instance ID.
    case uniform
    /// Instances are ordinary VM resources.
    case flexible
}

/// One scale set of a resource group, as listing them shows it.
public struct ScaleSetSummary: Sendable {
    public var ref: ScaleSetRef
    public var orchestrationMode: OrchestrationMode
    /// `virtualMachineProfile.osProfile.computerNamePrefix`, when set.
    public var computerNamePrefix: String?

    public init(
        ref: ScaleSetRef, orchestrationMode: OrchestrationMode, computerNamePrefix: String?
    ) {
        self.ref = ref
        self.orchestrationMode = orchestrationMode
        self.computerNamePrefix = computerNamePrefix
    }
}
