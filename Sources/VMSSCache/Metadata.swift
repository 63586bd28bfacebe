import AzureModel

/// How the metadata answer spells regions, zones, provider IDs and addresses.
enum Metadata {
    /// The location lower-cased with spaces removed: `West US` becomes `westus`.
    static func region(_ location: String?) -> String {
        guard let location else { return "" }
        var region = location.lowercased()
        region.removeAll { $0 == " " }
        return region
    }

    /// `<region>-<zone>`, else the platform fault domain, else `nil`.
    static func zone(region: String, machine: VirtualMachine) -> String? {
        if let zone = machine.zones.first(where: { !$0.isEmpty }) {
            return region + "-" + zone.lowercased()
        }
        return machine.platformFaultDomain.map { String($0) }
    }

    static func providerID(_ instance: ScaleSetInstanceRef) -> String {
        let scaleSet = instance.scaleSet
        return resourceGroupPrefix(scaleSet.resourceGroup)
            + "/providers/Microsoft.Compute/virtualMachineScaleSets/\(scaleSet.name)"
            + "/virtualMachines/\(instance.instanceID)"
    }

    static func providerID(_ machine: VirtualMachineRef) -> String {
        resourceGroupPrefix(machine.resourceGroup)
            + "/providers/Microsoft.Compute/virtualMachines/\(machine.name)"
    }

    static func addresses(computerName: String?, privateIPs: [String]) -> [NodeAddress] {
        var addresses: [NodeAddress] = []
        addresses.reserveCapacity(privateIPs.count + 1)
        if let computerName, !computerName.isEmpty {
            addresses.append(NodeAddress(type: "Hostname", address: computerName))
        }
        for ip in privateIPs where !ip.isEmpty {
            addresses.append(NodeAddress(type: "InternalIP", address: ip))
        }
        return addresses
    }

    private static func resourceGroupPrefix(_ group: ResourceGroupRef) -> String {
        "azure:///subscriptions/\(group.subscriptionID)/resourceGroups/\(group.name)"
    }
}

/// Maps a uniform scale set computer name (`<prefix><6 base-36 digits>`) to its instance ID.
enum ComputerName {
    /// The decimal instance ID when `lowered` is `prefix` plus six base-36 digits.
    static func instanceID(_ lowered: String, prefix: String) -> String? {
        guard !prefix.isEmpty, lowered.hasPrefix(prefix) else { return nil }
        let digits = lowered.utf8.dropFirst(prefix.utf8.count)
        guard digits.count == 6 else { return nil }
        var value = 0
        for byte in digits {
            let digit: Int
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = Int(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = Int(byte - UInt8(ascii: "a")) + 10
            default: return nil
            }
            value = value * 36 + digit
        }
        return String(value)
    }
}
