import AzureModel

/// One VM of a listing in about 40 bytes: the two names it is found by, and small indexes into
/// the listing's shared strings for everything that repeats across VMs.
struct CompactVM: Sendable {
    static let none: UInt16 = .max
    static let unknownState: UInt8 = .max

    var instanceID: String
    var computerName: String
    var size: UInt16
    var region: UInt16
    var zone: UInt16
    var provisioning: UInt8
    var power: UInt8

    var provisioningState: ProvisioningState? { ProvisioningState(rawValue: provisioning) }
    var powerState: PowerState? { PowerState(rawValue: power) }
}

/// Strings that repeat across a listing (sizes, regions, zones), each kept once.
struct StringTable {
    private(set) var strings: [String] = []
    private var indexes: [String: UInt16] = [:]

    mutating func intern(_ value: String?) -> UInt16 {
        guard let value else { return CompactVM.none }
        if let index = indexes[value] { return index }
        // A listing with 65,535 distinct sizes and zones does not exist; past that, drop the field.
        guard strings.count < Int(CompactVM.none) else { return CompactVM.none }
        let index = UInt16(strings.count)
        strings.append(value)
        indexes[value] = index
        return index
    }
}

/// A scale set's VMs as one listing showed them, indexed by instance ID and by lower-cased
/// computer name. Immutable once built, so answers can read it after the lock is released.
final class Listing: Sendable {
    let vms: [CompactVM]
    let strings: [String]
    private let byInstanceID: [String: Int32]
    private let byComputerName: [String: Int32]

    init(machines: [VirtualMachine]) {
        var table = StringTable()
        var vms: [CompactVM] = []
        var byInstanceID: [String: Int32] = [:]
        var byComputerName: [String: Int32] = [:]
        vms.reserveCapacity(machines.count)
        byInstanceID.reserveCapacity(machines.count)
        byComputerName.reserveCapacity(machines.count)
        for machine in machines {
            let instanceID = machine.instanceID ?? Self.instanceSuffix(of: machine.name)
            guard byInstanceID[instanceID] == nil else { continue }
            let region = Metadata.region(machine.location)
            let name = machine.computerName ?? ""
            let loweredName = name.lowercased()
            let vm = CompactVM(
                instanceID: instanceID,
                computerName: name,
                size: table.intern(machine.vmSize),
                region: table.intern(region),
                zone: table.intern(Metadata.zone(region: region, machine: machine)),
                provisioning: machine.provisioningState?.rawValue ?? CompactVM.unknownState,
                power: machine.powerState?.rawValue ?? CompactVM.unknownState
            )
            let index = Int32(vms.count)
            vms.append(vm)
            byInstanceID[instanceID] = index
            // Reuse the stored name when it is already lower case, so it is kept once.
            if !name.isEmpty {
                byComputerName[loweredName == name ? name : loweredName] = index
            }
        }
        self.vms = vms
        self.strings = table.strings
        self.byInstanceID = byInstanceID
        self.byComputerName = byComputerName
    }

    /// The VM with this instance ID; also accepts the `<vmss>_<instanceId>` spelling.
    func index(ofInstance id: String) -> Int? {
        if let index = byInstanceID[id] { return Int(index) }
        guard id.contains("_") else { return nil }
        return byInstanceID[Self.instanceSuffix(of: id)].map(Int.init)
    }

    /// The VM with this computer name, which must already be lower-cased.
    func index(ofComputerName lowered: String) -> Int? {
        byComputerName[lowered].map(Int.init)
    }

    func string(_ index: UInt16) -> String? {
        index == CompactVM.none ? nil : strings[Int(index)]
    }

    private static func instanceSuffix(of name: String) -> String {
        guard let underscore = name.lastIndex(of: "_") else { return name }
        return String(name[name.index(after: underscore)...])
    }
}
