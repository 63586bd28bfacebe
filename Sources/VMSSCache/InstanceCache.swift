import AzureModel
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The one cache every connection shares: scale-set listings, standalone VMs, "gone" entries and
/// the scale sets of the lookup resource group, read through `InstanceBackend`, and the verdict
/// rules that turn them into answers.
///
/// However many questions need one read at once, one backend call is in the air; the others
/// wait as stored completions, not as blocked threads. A question whose answer is cached is
/// answered synchronously on the caller's thread under one short lock.
///
/// Each question method comes in two shapes: a completion that takes the result alone, and a
/// `reporting:` completion that also takes an `AnswerInfo` (cache outcome and backend calls
/// started) for the request log. Either completion runs exactly once, never under the lock.
public final class InstanceCache: Sendable {
    private let backend: any InstanceBackend
    private let now: @Sendable () -> Double
    private let state: Mutex<CacheState>

    /// Makes an empty cache.
    /// - Parameters:
    ///   - backend: the cloud reads; the cache is its only caller.
    ///   - configuration: TTLs, bounds and the lookup resource group.
    ///   - now: the clock, in seconds since the Unix epoch; tests pass their own.
    public init(
        backend: any InstanceBackend,
        configuration: CacheConfiguration,
        now: @escaping @Sendable () -> Double = InstanceCache.wallClock
    ) {
        self.backend = backend
        self.now = now
        self.state = Mutex(CacheState(config: configuration))
    }

    /// Seconds since the Unix epoch, from the system's real-time clock.
    public static let wallClock: @Sendable () -> Double = {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    // MARK: Questions

    /// Whether the node's instance exists. `false` only on positive evidence of absence; a cloud
    /// failure with no answer the rules allow gives `.unavailable`, never `false`.
    public func instanceExists(
        _ question: NodeQuestion,
        completion: @escaping @Sendable (Result<Bool, VerdictFailure>) -> Void
    ) {
        ask(question, .exists, .bool(completion))
    }

    /// `instanceExists(_:completion:)`, also reporting the cache outcome and cloud calls.
    public func instanceExists(
        _ question: NodeQuestion,
        reporting completion: @escaping @Sendable (Result<Bool, VerdictFailure>, AnswerInfo) -> Void
    ) {
        ask(question, .exists, .boolInfo(completion))
    }

    /// Whether the node's instance is shut down: `true` only when provisioning succeeded and the
    /// power state is stopped, deallocating or deallocated. Unknown or missing is `false`, as is
    /// an unmanaged node or one with neither provider ID nor name; a node with only a name is
    /// looked up by it.
    public func instanceShutdown(
        _ question: NodeQuestion,
        completion: @escaping @Sendable (Result<Bool, VerdictFailure>) -> Void
    ) {
        ask(question, .shutdown, .bool(completion))
    }

    /// `instanceShutdown(_:completion:)`, also reporting the cache outcome and cloud calls.
    public func instanceShutdown(
        _ question: NodeQuestion,
        reporting completion: @escaping @Sendable (Result<Bool, VerdictFailure>, AnswerInfo) -> Void
    ) {
        ask(question, .shutdown, .boolInfo(completion))
    }

    /// The node's provider ID, size, addresses, zone and region. A missing instance is
    /// `.notFound`. Private IPs are read once, on the first metadata question, and kept with
    /// the entry. An unmanaged node gets its provider ID back and every other field empty.
    public func instanceMetadata(
        _ question: NodeQuestion,
        completion: @escaping @Sendable (Result<InstanceMetadata, VerdictFailure>) -> Void
    ) {
        ask(question, .metadata, .metadata(completion))
    }

    /// `instanceMetadata(_:completion:)`, also reporting the cache outcome and cloud calls.
    public func instanceMetadata(
        _ question: NodeQuestion,
        reporting completion:
            @escaping @Sendable (Result<InstanceMetadata, VerdictFailure>, AnswerInfo) -> Void
    ) {
        ask(question, .metadata, .metadataInfo(completion))
    }

    /// `instanceExists(_:completion:)` for async callers.
    public func instanceExists(_ question: NodeQuestion) async -> (
        Result<Bool, VerdictFailure>, AnswerInfo
    ) {
        await withCheckedContinuation { continuation in
            instanceExists(question, reporting: { continuation.resume(returning: ($0, $1)) })
        }
    }

    /// `instanceShutdown(_:completion:)` for async callers.
    public func instanceShutdown(_ question: NodeQuestion) async -> (
        Result<Bool, VerdictFailure>, AnswerInfo
    ) {
        await withCheckedContinuation { continuation in
            instanceShutdown(question, reporting: { continuation.resume(returning: ($0, $1)) })
        }
    }

    /// `instanceMetadata(_:completion:)` for async callers.
    public func instanceMetadata(_ question: NodeQuestion) async
        -> (Result<InstanceMetadata, VerdictFailure>, AnswerInfo)
    {
        await withCheckedContinuation { continuation in
            instanceMetadata(question, reporting: { continuation.resume(returning: ($0, $1)) })
        }
    }

    // MARK: Maintenance

    /// Counters since the cache was made, and the number of entries now.
    public func stats() -> CacheStats {
        state.withLock { $0.stats() }
    }

    /// Forgets one scale set, or everything when `scaleSet` is `nil`; reads in the air still
    /// complete. Returns how many entries were dropped.
    @discardableResult
    public func invalidate(_ scaleSet: ScaleSetRef?) -> Int {
        state.withLock { $0.invalidate(scaleSet) }
    }

    // MARK: Driving

    private func ask(_ question: NodeQuestion, _ kind: QuestionKind, _ sink: Sink) {
        let now = self.now()
        var waiter = Waiter(question, kind, sink, askedAt: now)
        var actions = Actions()
        state.withLock { $0.process(&waiter, now: now, into: &actions) }
        perform(actions)
    }

    private func perform(_ actions: Actions) {
        for key in actions.reads { read(key) }
        if let first = actions.first { first.sink.deliver(first.result, first.info) }
        for delivery in actions.more { delivery.sink.deliver(delivery.result, delivery.info) }
    }

    private func read(_ key: FlightKey) {
        let backend = self.backend
        Task {
            let result = await Self.fetch(key, from: backend)
            self.finish(key, result)
        }
    }

    private func finish(_ key: FlightKey, _ result: FlightResult) {
        let now = self.now()
        var actions = Actions()
        state.withLock { $0.finish(key, result, now: now, into: &actions) }
        perform(actions)
    }

    private static func fetch(_ key: FlightKey, from backend: any InstanceBackend) async
        -> FlightResult
    {
        do throws(CloudError) {
            switch key {
            case .scaleSet(let ref):
                // The listing is compacted here, outside the lock.
                return .listing(
                    Listing(machines: try await backend.listScaleSetVirtualMachines(ref)))
            case .machine(let ref):
                return .machine(try await backend.getVirtualMachine(ref))
            case .scaleSetList(let group):
                return .scaleSetList(try await backend.listScaleSets(group))
            case .instanceAddresses(let instance):
                return .addresses(try await backend.privateIPAddresses(of: instance))
            case .interfaceAddresses(_, let interfaceID):
                return .addresses(
                    try await backend.privateIPAddresses(ofNetworkInterface: interfaceID))
            }
        } catch {
            return .failed(error)
        }
    }
}
