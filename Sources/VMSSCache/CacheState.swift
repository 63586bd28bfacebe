import AzureModel

/// Which of the three questions is being answered.
enum QuestionKind: UInt8, Sendable {
    case exists, shutdown, metadata
}

/// A verdict before it is handed to the caller's completion.
enum Verdict: Sendable {
    case bool(Bool)
    /// Boxed, so that the far more frequent boolean answers move a few bytes, not 80.
    indirect case metadata(InstanceMetadata)

    var bool: Bool {
        if case .bool(let value) = self { return value }
        return false
    }
}

/// The caller's completion, in whichever of the four shapes the caller chose. An enum rather
/// than a wrapping closure, so the hot path allocates nothing of its own.
enum Sink: Sendable {
    case bool(@Sendable (Result<Bool, VerdictFailure>) -> Void)
    case boolInfo(@Sendable (Result<Bool, VerdictFailure>, AnswerInfo) -> Void)
    case metadata(@Sendable (Result<InstanceMetadata, VerdictFailure>) -> Void)
    case metadataInfo(@Sendable (Result<InstanceMetadata, VerdictFailure>, AnswerInfo) -> Void)

    func deliver(_ result: Result<Verdict, VerdictFailure>, _ info: AnswerInfo) {
        switch self {
        case .bool(let completion):
            completion(Self.bool(result))
        case .boolInfo(let completion):
            completion(Self.bool(result), info)
        case .metadata(let completion):
            completion(result.map(Self.metadata))
        case .metadataInfo(let completion):
            completion(result.map(Self.metadata), info)
        }
    }

    private static func bool(_ result: Result<Verdict, VerdictFailure>)
        -> Result<Bool, VerdictFailure>
    {
        switch result {
        case .success(let verdict): .success(verdict.bool)
        case .failure(let failure): .failure(failure)
        }
    }

    private static func metadata(_ verdict: Verdict) -> InstanceMetadata {
        if case .metadata(let metadata) = verdict { return metadata }
        return InstanceMetadata(
            providerID: "", instanceType: "", addresses: [], zone: "", region: "")
    }
}

/// One cloud read, keyed so that every question needing it shares it.
enum FlightKey: Hashable, Sendable {
    case scaleSet(ScaleSetRef)
    case machine(VirtualMachineRef)
    case scaleSetList(ResourceGroupRef)
    case instanceAddresses(ScaleSetInstanceRef)
    case interfaceAddresses(VirtualMachineRef, interfaceID: String)
}

/// What a finished cloud read brought back.
enum FlightResult: Sendable {
    case listing(Listing)
    case machine(VirtualMachine)
    case scaleSetList([ScaleSetSummary])
    case addresses([String])
    case failed(CloudError)
}

/// A question still being answered: what it asked, where the answer goes, what it has cost.
struct Waiter: Sendable {
    let question: NodeQuestion
    let kind: QuestionKind
    let sink: Sink
    let askedAt: Double
    var outcome = CacheOutcome.hit
    var waited = false
    var calls = 0
    var rounds = 0
    /// The failure of the last read this question waited on, and that read's key.
    var failedKey: FlightKey?
    var failure: CloudError?

    init(_ question: NodeQuestion, _ kind: QuestionKind, _ sink: Sink, askedAt: Double) {
        self.question = question
        self.kind = kind
        self.sink = sink
        self.askedAt = askedAt
    }

    func failure(for key: FlightKey) -> CloudError? {
        failedKey == key ? failure : nil
    }

    /// Records where the answer comes from: the first departure from `hit` sticks, except that
    /// a stale serve is always reported as such.
    mutating func mark(_ outcome: CacheOutcome) {
        if outcome == .stale || self.outcome == .hit { self.outcome = outcome }
    }
}

/// A cloud read in the air and the questions waiting for it.
struct Flight {
    let startedAt: Double
    var waiters: [Waiter]
}

/// What to do once the lock is released: completions to run and cloud reads to start.
struct Actions {
    struct Delivery {
        let sink: Sink
        let result: Result<Verdict, VerdictFailure>
        let info: AnswerInfo
    }

    /// The hot path delivers exactly one answer; keeping it out of the array avoids allocating.
    var first: Delivery?
    var more: [Delivery] = []
    var reads: [FlightKey] = []

    mutating func deliver(_ delivery: Delivery) {
        if first == nil { first = delivery } else { more.append(delivery) }
    }
}

/// A scale set as last read: its listing, or the evidence that it is gone.
struct ScaleSetEntry {
    enum State {
        case listing(Listing)
        case gone(code: String)
    }

    var state: State
    /// When the read that produced this entry started; evidence dates from then.
    var fetchStart: Double
    var expiresAt: Double
    var lastUse: UInt64
    /// Private IPs by instance ID, read on the first metadata question.
    var addresses: [String: [String]] = [:]
}

/// A standalone or Flex VM as last read.
struct MachineEntry {
    enum State {
        case machine(VirtualMachine)
        case gone(code: String)
    }

    var state: State
    var fetchStart: Double
    var expiresAt: Double
    var lastUse: UInt64
    var addresses: [String]?
}

/// A resource group's uniform scale sets, as computer-name prefixes, for node-name lookups.
struct ScaleSetListEntry {
    struct Route {
        let prefix: String
        let scaleSet: ScaleSetRef
    }

    enum State {
        case routes([Route])
        case gone(code: String)
    }

    var state: State
    var fetchStart: Double
    var expiresAt: Double
}

/// Everything the cache knows, guarded by one lock. Every method runs under that lock, decides,
/// and leaves cloud calls and completions to the caller through `Actions`.
struct CacheState {
    let config: CacheConfiguration
    var scaleSets: [ScaleSetRef: ScaleSetEntry] = [:]
    var machines: [VirtualMachineRef: MachineEntry] = [:]
    var scaleSetLists: [ResourceGroupRef: ScaleSetListEntry] = [:]
    var flights: [FlightKey: Flight] = [:]
    /// ARM throttles a whole subscription: while a Retry-After is pending no read is started,
    /// since each would only extend the penalty.
    var throttledUntil = -Double.infinity
    var throttle: CloudError?
    var tick: UInt64 = 0
    var counters = CacheStats()

    init(config: CacheConfiguration) {
        self.config = config
    }

    // MARK: Driving a question

    /// Answers the question or parks it on the read it needs, starting that read if none is
    /// in the air.
    mutating func process(_ waiter: inout Waiter, now: Double, into actions: inout Actions) {
        // Each pass either answers, parks, or records a failure that the next pass answers from;
        // the bound only guards against a rule change that would loop.
        for _ in 0..<8 {
            switch step(&waiter, now: now, actions: &actions) {
            case .answer(let result):
                answer(waiter, result, into: &actions)
                return
            case .wait(let key, let reason):
                if flights[key] != nil {
                    waiter.mark(.coalesced)
                    if !waiter.waited { counters.coalescedWaiters += 1 }
                    waiter.waited = true
                    flights[key]?.waiters.append(waiter)
                    return
                }
                if now < throttledUntil, let throttle, waiter.failure(for: key) == nil {
                    waiter.mark(.miss)
                    waiter.failedKey = key
                    waiter.failure = throttle
                    continue
                }
                guard waiter.rounds < 4 else {
                    let failure = VerdictFailure.unavailable(
                        "no settled answer from Azure", retryAfterSeconds: nil)
                    answer(waiter, .failure(failure), into: &actions)
                    return
                }
                waiter.mark(reason)
                waiter.waited = true
                waiter.calls += 1
                counters.backendCalls += 1
                if reason == .refresh { counters.refreshes += 1 }
                flights[key] = Flight(startedAt: now, waiters: [waiter])
                actions.reads.append(key)
                return
            }
        }
        let failure = VerdictFailure.unavailable(
            "no settled answer from Azure", retryAfterSeconds: nil)
        answer(waiter, .failure(failure), into: &actions)
    }

    /// Settles a finished read: stores what it brought and drives every question waiting on it.
    mutating func finish(
        _ key: FlightKey,
        _ result: FlightResult,
        now: Double,
        into actions: inout Actions
    ) {
        guard let flight = flights.removeValue(forKey: key) else { return }
        install(key, result, startedAt: flight.startedAt)
        var error: CloudError?
        if case .failed(let failure) = result, !failure.isGone { error = failure }
        for var waiter in flight.waiters {
            waiter.rounds += 1
            waiter.failedKey = error == nil ? nil : key
            waiter.failure = error
            process(&waiter, now: now, into: &actions)
        }
    }

    private mutating func answer(
        _ waiter: Waiter,
        _ result: Result<Verdict, VerdictFailure>,
        into actions: inout Actions
    ) {
        if waiter.waited {
            counters.misses += 1
        } else if waiter.outcome == .hit {
            counters.hits += 1
        } else if waiter.outcome == .goneHit {
            counters.goneHits += 1
        } else if waiter.outcome == .miss {
            counters.misses += 1
        }
        if waiter.outcome == .stale { counters.staleServes += 1 }
        let info = AnswerInfo(outcome: waiter.outcome, backendCalls: waiter.calls)
        actions.deliver(Actions.Delivery(sink: waiter.sink, result: result, info: info))
    }

    // MARK: The verdict rules

    enum Step {
        case answer(Result<Verdict, VerdictFailure>)
        /// Needs the read under this key; `reason` is the outcome if this question starts it.
        case wait(FlightKey, reason: CacheOutcome)
    }

    private mutating func step(_ waiter: inout Waiter, now: Double, actions: inout Actions) -> Step
    {
        switch waiter.question.providerID {
        case .unmanaged(let raw):
            // Not an Azure node: upstream says it exists, is not shut down, and has no metadata.
            switch waiter.kind {
            case .exists: return .answer(.success(.bool(true)))
            case .shutdown: return .answer(.success(.bool(false)))
            case .metadata:
                let metadata = InstanceMetadata(
                    providerID: raw, instanceType: "", addresses: [], zone: "", region: "")
                return .answer(.success(.metadata(metadata)))
            }
        case .empty:
            guard !waiter.question.nodeName.isEmpty else {
                if waiter.kind == .shutdown { return .answer(.success(.bool(false))) }
                let message = "the node has no provider ID and no name: it is not initialised yet"
                return .answer(.failure(.failedPrecondition(message)))
            }
            return stepByName(&waiter, now: now, actions: &actions)
        case .scaleSetInstance(let instance):
            return stepInstance(instance, computerName: nil, &waiter, now: now, actions: &actions)
        case .virtualMachine(let machine):
            return stepMachine(machine, &waiter, now: now, actions: &actions)
        }
    }

    /// Evidence from a read that started before the node was created says nothing about it. A
    /// creation time later than the question (clock skew) is capped at the question, so that a
    /// read started after the question always counts.
    private func createdFloor(_ waiter: Waiter) -> Double {
        guard let createdAt = waiter.question.createdAt else { return -.infinity }
        return min(createdAt, waiter.askedAt)
    }

    /// A listing lacking an instance is evidence only if it is this recent.
    private func missFloor(_ waiter: Waiter) -> Double {
        max(waiter.askedAt - config.refreshOnMissInterval, createdFloor(waiter))
    }

    /// The answer when there is positive evidence that the instance does not exist.
    private func absent(_ waiter: Waiter, now: Double, _ why: @autoclosure () -> String)
        -> Result<Verdict, VerdictFailure>
    {
        switch waiter.kind {
        case .exists:
            if let createdAt = waiter.question.createdAt, now - createdAt < config.newNodeGrace {
                return .success(.bool(true))
            }
            return .success(.bool(false))
        case .shutdown:
            return .success(.bool(false))
        case .metadata:
            return .failure(.notFound(why()))
        }
    }

    private func unavailable(_ error: CloudError, _ what: String, now: Double) -> Step {
        switch error {
        case .throttled(let until):
            let message = "\(what): Azure is throttling reads"
            return .answer(.failure(.unavailable(message, retryAfterSeconds: max(0, until - now))))
        case .transient(let detail), .fault(let detail):
            return .answer(.failure(.unavailable("\(what): \(detail)", retryAfterSeconds: nil)))
        case .gone(let code):
            return .answer(.failure(.unavailable("\(what): \(code)", retryAfterSeconds: nil)))
        }
    }

    private mutating func stepByName(_ waiter: inout Waiter, now: Double, actions: inout Actions)
        -> Step
    {
        guard let group = config.resourceGroup else {
            let message =
                "node \(waiter.question.nodeName) has no provider ID and no resource "
                + "group is configured to look it up in"
            return .answer(.failure(.failedPrecondition(message)))
        }
        let key = FlightKey.scaleSetList(group)
        let failure = waiter.failure(for: key)
        if let entry = scaleSetLists[group] {
            let fresh = now < entry.expiresAt
            switch entry.state {
            case .gone(let code):
                if fresh && entry.fetchStart >= createdFloor(waiter) {
                    waiter.mark(.goneHit)
                    return .answer(
                        absent(waiter, now: now, "resource group \(group) is gone (\(code))"))
                }
            case .routes(let routes):
                if fresh || (failure != nil && now <= entry.expiresAt + config.staleAllowance) {
                    if !fresh { waiter.mark(.stale) }
                    let lowered = waiter.question.nodeName.lowercased()
                    for route in routes {
                        if let id = ComputerName.instanceID(lowered, prefix: route.prefix) {
                            let instance = ScaleSetInstanceRef(
                                scaleSet: route.scaleSet, instanceID: id)
                            return stepInstance(
                                instance, computerName: lowered, &waiter, now: now,
                                actions: &actions)
                        }
                    }
                    let machine = VirtualMachineRef(resourceGroup: group, name: lowered)
                    return stepMachine(machine, &waiter, now: now, actions: &actions)
                }
            }
        }
        if let failure { return unavailable(failure, "listing scale sets of \(group)", now: now) }
        return .wait(key, reason: .miss)
    }

    private mutating func stepInstance(
        _ instance: ScaleSetInstanceRef,
        computerName: String?,
        _ waiter: inout Waiter,
        now: Double,
        actions: inout Actions
    ) -> Step {
        // Built only when needed: a hit should not pay for copying the key.
        var key: FlightKey { .scaleSet(instance.scaleSet) }
        let failure = waiter.failure == nil ? nil : waiter.failure(for: key)
        guard let slot = scaleSets.index(forKey: instance.scaleSet) else {
            if let failure {
                return unavailable(failure, "scale set \(instance.scaleSet)", now: now)
            }
            return .wait(key, reason: .miss)
        }
        tick &+= 1
        scaleSets.values[slot].lastUse = tick
        let entry = scaleSets.values[slot]
        let fresh = now < entry.expiresAt
        let listing: Listing
        switch entry.state {
        case .gone(let code):
            if fresh && entry.fetchStart >= createdFloor(waiter) {
                waiter.mark(.goneHit)
                return .answer(
                    absent(waiter, now: now, "scale set \(instance.scaleSet) is gone (\(code))"))
            }
            // Past its TTL, or older than the node: a gone entry is never stretched.
            if let failure {
                return unavailable(failure, "scale set \(instance.scaleSet)", now: now)
            }
            return .wait(key, reason: fresh ? .refresh : .miss)
        case .listing(let current):
            listing = current
        }
        let found =
            computerName.flatMap(listing.index(ofComputerName:))
            ?? listing.index(ofInstance: instance.instanceID)
        guard let index = found else {
            if fresh && entry.fetchStart >= missFloor(waiter) {
                return .answer(
                    absent(waiter, now: now, "instance \(instance) is not in its scale set"))
            }
            // A missing instance is not shut down; no need to refetch to say so.
            if fresh && waiter.kind == .shutdown { return .answer(.success(.bool(false))) }
            if let failure {
                return unavailable(failure, "scale set \(instance.scaleSet)", now: now)
            }
            return .wait(key, reason: fresh ? .refresh : .miss)
        }
        let vm = listing.vms[index]
        if let step = judgeFound(
            fetchStart: entry.fetchStart, expiresAt: entry.expiresAt,
            deleting: waiter.kind == .exists && vm.provisioningState == .deleting,
            key: key, failure: failure, &waiter, now: now, actions: &actions,
            deleted: "instance \(instance) is being deleted",
            subject: "scale set \(instance.scaleSet)")
        {
            return step
        }
        switch waiter.kind {
        case .exists:
            return .answer(.success(.bool(true)))
        case .shutdown:
            let shutDown = vm.provisioningState == .succeeded && vm.powerState?.isShutDown == true
            return .answer(.success(.bool(shutDown)))
        case .metadata:
            let canonical = ScaleSetInstanceRef(
                scaleSet: instance.scaleSet, instanceID: vm.instanceID)
            guard let ips = entry.addresses[vm.instanceID] else {
                let addressKey = FlightKey.instanceAddresses(canonical)
                if let failure = waiter.failure(for: addressKey) {
                    return unavailable(failure, "addresses of \(canonical)", now: now)
                }
                return .wait(addressKey, reason: .miss)
            }
            let metadata = InstanceMetadata(
                providerID: Metadata.providerID(canonical),
                instanceType: listing.string(vm.size) ?? "",
                addresses: Metadata.addresses(computerName: vm.computerName, privateIPs: ips),
                zone: listing.string(vm.zone) ?? "",
                region: listing.string(vm.region) ?? ""
            )
            return .answer(.success(.metadata(metadata)))
        }
    }

    private mutating func stepMachine(
        _ ref: VirtualMachineRef,
        _ waiter: inout Waiter,
        now: Double,
        actions: inout Actions
    ) -> Step {
        var key: FlightKey { .machine(ref) }
        let failure = waiter.failure == nil ? nil : waiter.failure(for: key)
        guard let slot = machines.index(forKey: ref) else {
            if let failure { return unavailable(failure, "VM \(ref)", now: now) }
            return .wait(key, reason: .miss)
        }
        tick &+= 1
        machines.values[slot].lastUse = tick
        let entry = machines.values[slot]
        let fresh = now < entry.expiresAt
        let vm: VirtualMachine
        switch entry.state {
        case .gone(let code):
            if fresh && entry.fetchStart >= createdFloor(waiter) {
                waiter.mark(.goneHit)
                return .answer(absent(waiter, now: now, "VM \(ref) is gone (\(code))"))
            }
            if let failure { return unavailable(failure, "VM \(ref)", now: now) }
            return .wait(key, reason: fresh ? .refresh : .miss)
        case .machine(let current):
            vm = current
        }
        if let step = judgeFound(
            fetchStart: entry.fetchStart, expiresAt: entry.expiresAt,
            deleting: waiter.kind == .exists && vm.provisioningState == .deleting,
            key: key, failure: failure, &waiter, now: now, actions: &actions,
            deleted: "VM \(ref) is being deleted", subject: "VM \(ref)")
        {
            return step
        }
        switch waiter.kind {
        case .exists:
            return .answer(.success(.bool(true)))
        case .shutdown:
            let shutDown = vm.provisioningState == .succeeded && vm.powerState?.isShutDown == true
            return .answer(.success(.bool(shutDown)))
        case .metadata:
            var ips: [String] = []
            if let interface = vm.primaryNetworkInterfaceID {
                guard let cached = entry.addresses else {
                    let addressKey = FlightKey.interfaceAddresses(ref, interfaceID: interface)
                    if let failure = waiter.failure(for: addressKey) {
                        return unavailable(failure, "addresses of VM \(ref)", now: now)
                    }
                    return .wait(addressKey, reason: .miss)
                }
                ips = cached
            }
            let region = Metadata.region(vm.location)
            let metadata = InstanceMetadata(
                providerID: Metadata.providerID(ref),
                instanceType: vm.vmSize ?? "",
                addresses: Metadata.addresses(computerName: vm.computerName, privateIPs: ips),
                zone: Metadata.zone(region: region, machine: vm) ?? "",
                region: region
            )
            return .answer(.success(.metadata(metadata)))
        }
    }

    /// An entry asked about in its last fifth of life is reread in the background, once, so
    /// that a busy key never expires under its callers.
    /// Decides about an instance found in an entry, before its answer is read; nil means
    /// "answer from it now". A deleting instance is evidence only from a fresh read made after
    /// the node existed; an entry in its last fifth of life is refreshed in the background; an
    /// expired one answers only while the cloud fails, within the stale allowance, and never
    /// with a "gone".
    private mutating func judgeFound(
        fetchStart: Double,
        expiresAt: Double,
        deleting: Bool,
        key: @autoclosure () -> FlightKey,
        failure: CloudError?,
        _ waiter: inout Waiter,
        now: Double,
        actions: inout Actions,
        deleted: @autoclosure () -> String,
        subject: @autoclosure () -> String
    ) -> Step? {
        guard now < expiresAt else {
            guard let failure else { return .wait(key(), reason: .miss) }
            guard now <= expiresAt + config.staleAllowance, !deleting else {
                return unavailable(failure, subject(), now: now)
            }
            waiter.mark(.stale)
            return nil
        }
        if deleting {
            if fetchStart >= createdFloor(waiter) {
                return .answer(absent(waiter, now: now, deleted()))
            }
            if let failure { return unavailable(failure, subject(), now: now) }
            return .wait(key(), reason: .refresh)
        }
        if now >= fetchStart + 0.8 * (expiresAt - fetchStart) {
            refreshAhead(key(), &waiter, now: now, actions: &actions)
        }
        return nil
    }

    private mutating func refreshAhead(
        _ key: FlightKey,
        _ waiter: inout Waiter,
        now: Double,
        actions: inout Actions
    ) {
        guard now >= throttledUntil, flights[key] == nil else { return }
        flights[key] = Flight(startedAt: now, waiters: [])
        waiter.calls += 1
        counters.backendCalls += 1
        counters.refreshes += 1
        actions.reads.append(key)
    }

    // MARK: Storing what the cloud said

    private mutating func install(_ key: FlightKey, _ result: FlightResult, startedAt: Double) {
        if case .failed(let error) = result, case .throttled(let until) = error,
            until > throttledUntil
        {
            throttledUntil = until
            throttle = error
        }
        tick &+= 1
        switch key {
        case .scaleSet(let ref):
            let existing = scaleSets[ref]
            // Never let a slow older read overwrite a newer one.
            if let existing, existing.fetchStart > startedAt { return }
            switch result {
            case .listing(let listing):
                var addresses = existing?.addresses ?? [:]
                if !addresses.isEmpty {
                    addresses = addresses.filter { listing.index(ofInstance: $0.key) != nil }
                }
                scaleSets[ref] = ScaleSetEntry(
                    state: .listing(listing), fetchStart: startedAt,
                    expiresAt: startedAt + config.listingTTL, lastUse: tick, addresses: addresses)
            case .failed(.gone(let code)):
                scaleSets[ref] = ScaleSetEntry(
                    state: .gone(code: code), fetchStart: startedAt,
                    expiresAt: startedAt + config.negativeTTL, lastUse: tick)
            default:
                return
            }
            if existing == nil { evictScaleSets() }
        case .machine(let ref):
            let existing = machines[ref]
            if let existing, existing.fetchStart > startedAt { return }
            switch result {
            case .machine(let vm):
                // Addresses belong to the NIC: keep them only while the NIC stays the same.
                var addresses: [String]?
                if let existing, case .machine(let old) = existing.state,
                    old.primaryNetworkInterfaceID == vm.primaryNetworkInterfaceID
                {
                    addresses = existing.addresses
                }
                machines[ref] = MachineEntry(
                    state: .machine(vm), fetchStart: startedAt,
                    expiresAt: startedAt + config.virtualMachineTTL, lastUse: tick,
                    addresses: addresses)
            case .failed(.gone(let code)):
                machines[ref] = MachineEntry(
                    state: .gone(code: code), fetchStart: startedAt,
                    expiresAt: startedAt + config.negativeTTL, lastUse: tick)
            default:
                return
            }
            if existing == nil { evictMachines() }
        case .scaleSetList(let group):
            if let existing = scaleSetLists[group], existing.fetchStart > startedAt { return }
            switch result {
            case .scaleSetList(let summaries):
                var routes: [ScaleSetListEntry.Route] = []
                for summary in summaries where summary.orchestrationMode == .uniform {
                    guard let prefix = summary.computerNamePrefix?.lowercased(), !prefix.isEmpty
                    else { continue }
                    routes.append(.init(prefix: prefix, scaleSet: summary.ref))
                }
                // The longest prefix wins when one scale set's prefix starts another's.
                routes.sort { $0.prefix.utf8.count > $1.prefix.utf8.count }
                scaleSetLists[group] = ScaleSetListEntry(
                    state: .routes(routes), fetchStart: startedAt,
                    expiresAt: startedAt + config.scaleSetListTTL)
            case .failed(.gone(let code)):
                scaleSetLists[group] = ScaleSetListEntry(
                    state: .gone(code: code), fetchStart: startedAt,
                    expiresAt: startedAt + config.negativeTTL)
            default:
                return
            }
        case .instanceAddresses(let instance):
            switch result {
            case .addresses(let ips):
                scaleSets[instance.scaleSet]?.addresses[instance.instanceID] = ips
            case .failed(.gone):
                // The NICs are gone with the instance; the listing decides whether it exists.
                scaleSets[instance.scaleSet]?.addresses[instance.instanceID] = []
            default:
                return
            }
        case .interfaceAddresses(let ref, _):
            switch result {
            case .addresses(let ips): machines[ref]?.addresses = ips
            case .failed(.gone): machines[ref]?.addresses = []
            default: return
            }
        }
    }

    private mutating func evictScaleSets() {
        while scaleSets.count > max(config.maxScaleSets, 1) {
            guard let oldest = scaleSets.min(by: { $0.value.lastUse < $1.value.lastUse }) else {
                return
            }
            scaleSets.removeValue(forKey: oldest.key)
        }
    }

    private mutating func evictMachines() {
        while machines.count > max(config.maxVirtualMachines, 1) {
            guard let oldest = machines.min(by: { $0.value.lastUse < $1.value.lastUse }) else {
                return
            }
            machines.removeValue(forKey: oldest.key)
        }
    }

    // MARK: Maintenance

    func stats() -> CacheStats {
        var stats = counters
        stats.entries = scaleSets.count + machines.count + scaleSetLists.count
        stats.readsInFlight = flights.count
        return stats
    }

    mutating func invalidate(_ scaleSet: ScaleSetRef?) -> Int {
        guard let scaleSet else {
            let count = scaleSets.count + machines.count + scaleSetLists.count
            scaleSets.removeAll()
            machines.removeAll()
            scaleSetLists.removeAll()
            return count
        }
        return scaleSets.removeValue(forKey: scaleSet) == nil ? 0 : 1
    }
}
