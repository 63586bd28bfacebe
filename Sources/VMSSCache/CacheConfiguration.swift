import AzureModel

/// How long the cache trusts what the cloud said, how much it keeps, and where it looks nodes up
/// by name. Every duration is in seconds.
public struct CacheConfiguration: Sendable {
    /// How long a scale set's VM listing answers questions (`vmssVirtualMachinesCacheTTLInSeconds`).
    public var listingTTL: Double = 600
    /// How long one standalone or Flex VM answers questions (`vmCacheTTLInSeconds`).
    public var virtualMachineTTL: Double = 60
    /// How long a "gone" answer from the cloud is believed before it is asked again.
    public var negativeTTL: Double = 120
    /// A listing older than the question by more than this is refetched once before its lack of
    /// an instance counts as evidence that the instance is gone.
    public var refreshOnMissInterval: Double = 10
    /// How long past expiry a listing may still answer while the cloud fails; `nil` means twice
    /// `listingTTL`. Never used to answer "gone".
    public var maxStale: Double? = nil
    /// The most scale-set entries kept; the least recently asked go first.
    public var maxScaleSets: Int = 10_000
    /// The most standalone VM entries kept; the least recently asked go first.
    public var maxVirtualMachines: Int = 100_000
    /// A node younger than this (by its creation time) is never declared gone.
    public var newNodeGrace: Double = 0
    /// The resource group searched when a question names a node but carries no provider ID.
    public var resourceGroup: ResourceGroupRef?
    /// How long the resource group's list of scale sets serves node-name lookups.
    public var scaleSetListTTL: Double = 600

    /// The defaults of the upstream Azure cloud provider, with no name lookups.
    public init() {}

    /// The stale-serve allowance past expiry, with the default filled in.
    var staleAllowance: Double { maxStale ?? 2 * listingTTL }
}
