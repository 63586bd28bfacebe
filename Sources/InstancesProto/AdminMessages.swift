internal import CInstancesProto

/// Asks for the cache's counters.
public struct StatsRequest: ProtoMessage, Equatable {
    public init() {}

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        self = try unpack(
            bytes, as: "StatsRequest",
            cloudprovider__instances__v1__stats_request__unpack,
            cloudprovider__instances__v1__stats_request__free_unpacked
        ) { _ in StatsRequest() }
    }

    public func serializedBytes() -> [UInt8] { [] }
}

/// How many ARM calls of one operation ended with one outcome.
public struct ARMCallCount: Sendable, Equatable {
    public var operation: String
    public var outcome: String
    public var count: UInt64

    public init(operation: String, outcome: String, count: UInt64) {
        self.operation = operation
        self.outcome = outcome
        self.count = count
    }
}

/// The cache's counters and the ARM calls made so far.
public struct StatsResponse: ProtoMessage, Equatable {
    public var hits: UInt64 = 0
    public var misses: UInt64 = 0
    public var goneHits: UInt64 = 0
    public var coalescedWaiters: UInt64 = 0
    public var refreshes: UInt64 = 0
    public var staleServes: UInt64 = 0
    public var entries: UInt64 = 0
    public var armCalls: [ARMCallCount] = []

    public init() {}

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        self = try unpack(
            bytes, as: "StatsResponse",
            cloudprovider__instances__v1__stats_response__unpack,
            cloudprovider__instances__v1__stats_response__free_unpacked
        ) { message in
            var stats = StatsResponse()
            stats.hits = message.hits
            stats.misses = message.misses
            stats.goneHits = message.gone_hits
            stats.coalescedWaiters = message.coalesced_waiters
            stats.refreshes = message.refreshes
            stats.staleServes = message.stale_serves
            stats.entries = message.entries
            stats.armCalls = (0..<message.n_arm_calls).compactMap { index in
                message.arm_calls[index].map { call in
                    ARMCallCount(
                        operation: string(call.pointee.operation),
                        outcome: string(call.pointee.outcome),
                        count: call.pointee.count)
                }
            }
            return stats
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = CStringArena()
        var message = Cloudprovider__Instances__V1__StatsResponse()
        cloudprovider__instances__v1__stats_response__init(&message)
        message.hits = hits
        message.misses = misses
        message.gone_hits = goneHits
        message.coalesced_waiters = coalescedWaiters
        message.refreshes = refreshes
        message.stale_serves = staleServes
        message.entries = entries
        let calls = armCalls.map { call in
            var entry = Cloudprovider__Instances__V1__ArmCallCount()
            cloudprovider__instances__v1__arm_call_count__init(&entry)
            entry.operation = arena.copy(call.operation)
            entry.outcome = arena.copy(call.outcome)
            entry.count = call.count
            return Optional(arena.allocate(entry))
        }
        message.n_arm_calls = calls.count
        message.arm_calls = arena.array(calls)
        return pack(
            &message,
            cloudprovider__instances__v1__stats_response__get_packed_size,
            cloudprovider__instances__v1__stats_response__pack)
    }
}

/// Names one scale set to forget; all fields empty forgets everything.
public struct InvalidateRequest: ProtoMessage, Equatable {
    public var subscriptionID: String
    public var resourceGroup: String
    public var scaleSet: String

    public init(subscriptionID: String = "", resourceGroup: String = "", scaleSet: String = "") {
        self.subscriptionID = subscriptionID
        self.resourceGroup = resourceGroup
        self.scaleSet = scaleSet
    }

    /// Whether the request names nothing, and so asks to forget everything.
    public var isEmpty: Bool { subscriptionID.isEmpty && resourceGroup.isEmpty && scaleSet.isEmpty }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        guard !stringFieldHoldsNUL(bytes, fields: [1, 2, 3]) else {
            throw ProtoDecodingError(messageName: "InvalidateRequest")
        }
        self = try unpack(
            bytes, as: "InvalidateRequest",
            cloudprovider__instances__v1__invalidate_request__unpack,
            cloudprovider__instances__v1__invalidate_request__free_unpacked
        ) { message in
            InvalidateRequest(
                subscriptionID: string(message.subscription_id),
                resourceGroup: string(message.resource_group),
                scaleSet: string(message.scale_set))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = CStringArena()
        var message = Cloudprovider__Instances__V1__InvalidateRequest()
        cloudprovider__instances__v1__invalidate_request__init(&message)
        message.subscription_id = arena.copy(subscriptionID)
        message.resource_group = arena.copy(resourceGroup)
        message.scale_set = arena.copy(scaleSet)
        return pack(
            &message,
            cloudprovider__instances__v1__invalidate_request__get_packed_size,
            cloudprovider__instances__v1__invalidate_request__pack)
    }
}

/// How many cache entries an invalidation removed.
public struct InvalidateResponse: ProtoMessage, Equatable {
    public var removed: UInt64

    public init(removed: UInt64) {
        self.removed = removed
    }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        self = try unpack(
            bytes, as: "InvalidateResponse",
            cloudprovider__instances__v1__invalidate_response__unpack,
            cloudprovider__instances__v1__invalidate_response__free_unpacked
        ) { message in
            InvalidateResponse(removed: message.removed)
        }
    }

    public func serializedBytes() -> [UInt8] {
        var message = Cloudprovider__Instances__V1__InvalidateResponse()
        cloudprovider__instances__v1__invalidate_response__init(&message)
        message.removed = removed
        return pack(
            &message,
            cloudprovider__instances__v1__invalidate_response__get_packed_size,
            cloudprovider__instances__v1__invalidate_response__pack)
    }
}
