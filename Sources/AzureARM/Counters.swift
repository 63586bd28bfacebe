import AzureModel
import Synchronization

/// The ARM operations counted, by the names metrics use.
public enum ARMOperation: String, Sendable, CaseIterable {
    case listScaleSetVMs = "list_vmss_vms"
    case getVM = "get_vm"
    case listScaleSets = "list_vmss"
    case listScaleSetVMNICs = "list_vmss_vm_nics"
    case getNIC = "get_nic"
    case token = "token"
}

/// How one HTTP request (or one refusal before sending) ended.
public enum ARMOutcome: String, Sendable, CaseIterable {
    case ok, gone, throttled, transient, fault
    /// Refused by the local throttle gate; nothing was sent.
    case throttledLocally = "throttled_locally"

    init(_ error: CloudError) {
        switch error {
        case .gone: self = .gone
        case .throttled: self = .throttled
        case .transient: self = .transient
        case .fault: self = .fault
        }
    }
}

/// Counts of every ARM and token request by operation and outcome, and of token renewals.
/// Each HTTP request counts once: every page and every retry.
public final class ARMCounters: Sendable {
    private let counts = Mutex<[ARMOperation: [ARMOutcome: UInt64]]>([:])
    private let renewals = Atomic<UInt64>(0)

    public init() {}

    func record(_ operation: ARMOperation, _ outcome: ARMOutcome) {
        counts.withLock { $0[operation, default: [:]][outcome, default: 0] += 1 }
    }

    func recordRenewal() {
        renewals.add(1, ordering: .relaxed)
    }

    /// Every non-zero count, in a stable order.
    public func snapshot() -> [(operation: String, outcome: String, count: UInt64)] {
        let current = counts.withLock { $0 }
        var rows: [(operation: String, outcome: String, count: UInt64)] = []
        for operation in ARMOperation.allCases {
            for outcome in ARMOutcome.allCases {
                if let count = current[operation]?[outcome], count > 0 {
                    rows.append((operation.rawValue, outcome.rawValue, count))
                }
            }
        }
        return rows
    }

    /// One count; zero when never recorded.
    public func count(_ operation: ARMOperation, _ outcome: ARMOutcome) -> UInt64 {
        counts.withLock { $0[operation]?[outcome] ?? 0 }
    }

    /// HTTP requests of one operation, whatever their outcome, not counting local refusals.
    public func sent(_ operation: ARMOperation) -> UInt64 {
        counts.withLock { state in
            state[operation, default: [:]].filter { $0.key != .throttledLocally }.values.reduce(
                0, +)
        }
    }

    /// How many access tokens were fetched (the first one included).
    public var tokenRenewals: UInt64 { renewals.load(ordering: .relaxed) }
}
