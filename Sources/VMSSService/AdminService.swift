import AzureModel
import GRPCTransport
import InstancesProto
import VMSSCache

/// Serves `cloudprovider.instances.v1.Admin`: the cache's counters with the ARM calls made, and
/// invalidation of one scale set or of everything.
public final class AdminService: Sendable {
    /// The service's full name.
    public static let name = "cloudprovider.instances.v1.Admin"

    private let cache: InstanceCache
    private let armCalls: @Sendable () -> [ARMCallCount]

    /// An admin service over `cache`, reading ARM call counts from `armCalls`.
    public init(cache: InstanceCache, armCalls: @escaping @Sendable () -> [ARMCallCount]) {
        self.cache = cache
        self.armCalls = armCalls
    }

    /// The handlers of `Stats` and `Invalidate`, keyed by `:path`.
    public var handlers: [String: RPCHandler] {
        let prefix = "/\(AdminService.name)/"
        return [
            prefix + "Stats": .unary(stats),
            prefix + "Invalidate": .unary(invalidate),
        ]
    }

    private func stats(_ bytes: [UInt8], _ context: CallContext, _ responder: UnaryResponder) {
        guard (try? StatsRequest(serializedBytes: bytes)) != nil else {
            return responder.fail(.unparsable("StatsRequest"))
        }
        let counters = cache.stats()
        var response = StatsResponse()
        response.hits = UInt64(counters.hits)
        response.misses = UInt64(counters.misses)
        response.goneHits = UInt64(counters.goneHits)
        response.coalescedWaiters = UInt64(counters.coalescedWaiters)
        response.refreshes = UInt64(counters.refreshes)
        response.staleServes = UInt64(counters.staleServes)
        response.entries = UInt64(counters.entries)
        response.armCalls = armCalls()
        responder.succeed(response.serializedBytes())
    }

    private func invalidate(_ bytes: [UInt8], _ context: CallContext, _ responder: UnaryResponder) {
        guard let request = try? InvalidateRequest(serializedBytes: bytes) else {
            return responder.fail(.unparsable("InvalidateRequest"))
        }
        if request.isEmpty {
            let removed = cache.invalidate(nil)
            return responder.succeed(InvalidateResponse(removed: UInt64(removed)).serializedBytes())
        }
        guard !request.subscriptionID.isEmpty, !request.resourceGroup.isEmpty,
            !request.scaleSet.isEmpty
        else {
            return responder.fail(
                GRPCStatus(
                    code: .invalidArgument,
                    message: "name a scale set by subscription, resource group and name, or none"))
        }
        let scaleSet = ScaleSetRef(
            resourceGroup: ResourceGroupRef(
                subscriptionID: request.subscriptionID, name: request.resourceGroup),
            name: request.scaleSet)
        let removed = cache.invalidate(scaleSet)
        responder.succeed(InvalidateResponse(removed: UInt64(removed)).serializedBytes())
    }
}
