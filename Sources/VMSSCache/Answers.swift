import AzureModel

/// The question as the service layer received it. The provider ID is already parsed by the
/// caller; a malformed one never reaches the cache.
public struct NodeQuestion: Sendable {
    /// The node's `spec.providerID`, parsed.
    public var providerID: ProviderID
    /// The node's name; empty when unknown.
    public var nodeName: String
    /// When the Node object was created, in seconds since the Unix epoch; `nil` when unknown.
    public var createdAt: Double?

    /// Asks about one node.
    public init(providerID: ProviderID, nodeName: String = "", createdAt: Double? = nil) {
        self.providerID = providerID
        self.nodeName = nodeName
        self.createdAt = createdAt
    }
}

/// Why the cache gave no verdict; each case maps to one gRPC status.
public enum VerdictFailure: Error, Sendable, Equatable {
    /// The question cannot be answered in this state: no provider ID and no node name.
    case failedPrecondition(String)
    /// The question itself is wrong.
    case invalidArgument(String)
    /// Metadata was asked of an instance that does not exist, or a node name matched nothing.
    case notFound(String)
    /// The cloud is throttled, failing or unreachable and no answer the rules allow is cached.
    /// `retryAfterSeconds` is how long the cloud asked callers to wait, when it said.
    case unavailable(String, retryAfterSeconds: Double?)
}

/// One address of a node, typed the way Kubernetes types them (`Hostname`, `InternalIP`).
public struct NodeAddress: Sendable, Hashable {
    /// The Kubernetes address type.
    public var type: String
    /// The address itself.
    public var address: String

    /// Makes one address.
    public init(type: String, address: String) {
        self.type = type
        self.address = address
    }
}

/// What InstancesV2 metadata reports of one node.
public struct InstanceMetadata: Sendable, Equatable {
    /// The canonical `azure:///...` provider ID (resource names lower-cased).
    public var providerID: String
    /// The VM size, such as `Standard_D2s_v3`.
    public var instanceType: String
    /// The hostname first, then the private IPs, primary first.
    public var addresses: [NodeAddress]
    /// `<region>-<zone>`, or the platform fault domain when the VM has no zone, or empty.
    public var zone: String
    /// The location, lower-cased without spaces.
    public var region: String

    /// Makes a metadata answer.
    public init(
        providerID: String,
        instanceType: String,
        addresses: [NodeAddress],
        zone: String,
        region: String
    ) {
        self.providerID = providerID
        self.instanceType = instanceType
        self.addresses = addresses
        self.zone = zone
        self.region = region
    }
}

/// Where one answer came from, for the request log.
public enum CacheOutcome: String, Sendable {
    /// Answered from a cached listing or VM without calling the cloud.
    case hit
    /// The data was missing or expired: the cloud was asked (by this question) before answering.
    case miss
    /// Answered from a cached "gone" entry without calling the cloud.
    case goneHit = "gone_hit"
    /// Waited for a cloud call another question had already started.
    case coalesced
    /// The cloud failed; answered from a listing past its expiry.
    case stale
    /// The instance was missing from a cached listing too old to be evidence; refetched first.
    case refresh
}

/// What one answer cost: its cache outcome and the cloud calls it started.
public struct AnswerInfo: Sendable, Equatable {
    /// Where the answer came from.
    public var outcome: CacheOutcome
    /// Cloud calls this question started, including a background refresh it triggered;
    /// 0 when it only waited on calls others started.
    public var backendCalls: Int

    /// Makes an answer report.
    public init(outcome: CacheOutcome, backendCalls: Int) {
        self.outcome = outcome
        self.backendCalls = backendCalls
    }
}

/// Counters since the cache was made, and its current size.
public struct CacheStats: Sendable, Equatable {
    /// Questions answered at once from a cached listing or VM.
    public var hits = 0
    /// Questions that had to wait for the cloud.
    public var misses = 0
    /// Questions answered at once from a cached "gone" entry.
    public var goneHits = 0
    /// Questions that waited on a cloud call already in the air instead of starting one.
    public var coalescedWaiters = 0
    /// Refetches of entries still in date: refresh-on-miss and refresh-ahead.
    public var refreshes = 0
    /// Answers given from a listing past its expiry because the cloud failed.
    public var staleServes = 0
    /// Cloud calls started, of every kind.
    public var backendCalls = 0
    /// Entries cached now: scale sets, VMs and scale-set lists.
    public var entries = 0
    /// Cloud reads in the air now.
    public var readsInFlight = 0

    /// All zero.
    public init() {}
}
