/// A resource group, named the way every key in this program is: lower-cased.
public struct ResourceGroupRef: Hashable, Sendable, CustomStringConvertible {
    /// The subscription ID, lower-cased.
    public let subscriptionID: String
    /// The resource group name, lower-cased.
    public let name: String

    /// Lower-cases both parts, since Azure resource IDs are case-insensitive.
    public init(subscriptionID: String, name: String) {
        self.subscriptionID = subscriptionID.lowercased()
        self.name = name.lowercased()
    }

    public var description: String { "\(subscriptionID)/\(name)" }
}

/// A virtual machine scale set.
public struct ScaleSetRef: Hashable, Sendable, CustomStringConvertible {
    public let resourceGroup: ResourceGroupRef
    /// The scale set name, lower-cased.
    public let name: String

    public init(resourceGroup: ResourceGroupRef, name: String) {
        self.resourceGroup = resourceGroup
        self.name = name.lowercased()
    }

    public var description: String { "\(resourceGroup)/\(name)" }
}

/// One instance of a uniform scale set.
public struct ScaleSetInstanceRef: Hashable, Sendable, CustomStringConvertible {
    public let scaleSet: ScaleSetRef
    /// The decimal instance ID, as ARM's `instanceId` spells it.
    public let instanceID: String

    public init(scaleSet: ScaleSetRef, instanceID: String) {
        self.scaleSet = scaleSet
        self.instanceID = instanceID
    }

    public var description: String { "\(scaleSet)/\(instanceID)" }
}

/// A virtual machine resource: standalone, in an availability set, or a Flex scale set instance.
public struct VirtualMachineRef: Hashable, Sendable, CustomStringConvertible {
    public let resourceGroup: ResourceGroupRef
    /// The VM name, lower-cased.
    public let name: String

    public init(resourceGroup: ResourceGroupRef, name: String) {
        self.resourceGroup = resourceGroup
        self.name = name.lowercased()
    }

    public var description: String { "\(resourceGroup)/\(name)" }
}
