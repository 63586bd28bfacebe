/// A Kubernetes node's `spec.providerID`, read into what this provider can act on.
public enum ProviderID: Hashable, Sendable {
    /// The node has no provider ID yet: it is not initialised.
    case empty
    /// Not an `azure://` ID: a node this provider does not manage.
    case unmanaged(String)
    /// An instance of a uniform scale set.
    case scaleSetInstance(ScaleSetInstanceRef)
    /// A VM resource: standalone, availability set, or Flex scale set instance.
    case virtualMachine(VirtualMachineRef)
}

/// Why an `azure://` provider ID could not be read.
public struct ProviderIDError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, in words fit for a gRPC status message.
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
