/// The reads the cache needs from the cloud. Each call is one logical read, however many pages
/// or retries it takes; every failure is already sorted into a `CloudError`.
public protocol InstanceBackend: Sendable {
    /// Every VM of a uniform scale set, with power states.
    func listScaleSetVirtualMachines(_ scaleSet: ScaleSetRef) async throws(CloudError)
        -> [VirtualMachine]

    /// One VM resource with its instance view.
    func getVirtualMachine(_ vm: VirtualMachineRef) async throws(CloudError) -> VirtualMachine

    /// The scale sets of a resource group.
    func listScaleSets(_ resourceGroup: ResourceGroupRef) async throws(CloudError)
        -> [ScaleSetSummary]

    /// The private IP addresses of a scale set instance's NICs, primary NIC and primary IP first.
    func privateIPAddresses(of instance: ScaleSetInstanceRef) async throws(CloudError) -> [String]

    /// The private IP addresses of one network interface, named by its ARM ID, primary first.
    func privateIPAddresses(ofNetworkInterface id: String) async throws(CloudError) -> [String]
}
