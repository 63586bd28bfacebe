import AzureARM
import GRPCTransport
import Metrics
import Synchronization
import VMSSCache

/// What `/readyz` and the health service report: ready once the configuration is loaded, a token
/// is in hand and the socket accepts; not ready again while draining.
final class Readiness: Sendable {
    private struct State {
        var tokenObtained = false
        var draining = false
    }

    private let state = Mutex(State())
    private let accepting: @Sendable () -> Bool

    /// Readiness of a daemon whose configuration is loaded; `accepting` tells whether the
    /// socket takes connections.
    init(accepting: @escaping @Sendable () -> Bool) {
        self.accepting = accepting
    }

    func tokenObtained() {
        state.withLock { $0.tokenObtained = true }
    }

    func draining() {
        state.withLock { $0.draining = true }
    }

    /// Whether the daemon is ready, and if not, why.
    func check() -> (Bool, String) {
        let state = self.state.withLock { $0 }
        if state.draining { return (false, "draining: the server is shutting down") }
        if !accepting() { return (false, "the socket is not accepting connections") }
        if !state.tokenObtained { return (false, "no access token obtained yet") }
        return (true, "ok")
    }
}

/// Every metric vmssd exposes: calls by method and status with their latency (recorded by the
/// transport as each call ends), and the cache's, ARM client's and throttle gate's counters
/// (read when scraped).
final class DaemonMetrics: Sendable {
    let rpc: RPCMetrics
    private let cache: InstanceCache
    private let arm: ARMClient
    private let subscriptionID: String
    private let readiness: Readiness

    /// Metrics for calls to `methods` (full paths) and the given parts.
    init(
        methods: [String], cache: InstanceCache, arm: ARMClient, subscriptionID: String,
        readiness: Readiness
    ) {
        self.rpc = RPCMetrics(methods: methods.sorted())
        self.cache = cache
        self.arm = arm
        self.subscriptionID = subscriptionID
        self.readiness = readiness
    }

    /// The transport's observer: the method index is looked up once per path at start-up, and
    /// each finished call costs three relaxed atomic additions.
    var callObserver: CallCompletionObserver {
        let rpc = self.rpc
        return CallCompletionObserver(
            methodIndex: { rpc.index(of: $0) ?? -1 },
            completed: { index, code, seconds in
                rpc.record(methodIndex: index, code: code, seconds: seconds)
            })
    }

    /// The Prometheus page.
    func render() -> String {
        var page = PrometheusText()
        rpc.write(to: &page)

        let stats = cache.stats()
        let counters: [(String, String, Int)] = [
            ("hits", "Questions answered at once from a cached listing or VM.", stats.hits),
            ("misses", "Questions that had to wait for Azure.", stats.misses),
            ("gone_hits", "Questions answered at once from a cached gone entry.", stats.goneHits),
            (
                "coalesced_waiters", "Questions that joined an Azure read already in the air.",
                stats.coalescedWaiters
            ),
            ("refreshes", "Refetches of entries still in date.", stats.refreshes),
            (
                "stale_serves", "Answers from a listing past its expiry because Azure failed.",
                stats.staleServes
            ),
        ]
        for (name, help, value) in counters {
            page.counter("vmssd_cache_\(name)_total", help: help, [([], Double(value))])
        }
        page.gauge(
            "vmssd_cache_entries", help: "Entries cached now: scale sets, VMs and scale-set lists.",
            [([], Double(stats.entries))])
        page.gauge(
            "vmssd_cache_reads_in_flight", help: "Azure reads in the air now.",
            [([], Double(stats.readsInFlight))])

        page.counter(
            "vmssd_arm_requests_total",
            help: "HTTP requests to ARM and the token endpoint, by operation and outcome.",
            arm.armCallCounts().map {
                ([("operation", $0.operation), ("outcome", $0.outcome)], Double($0.count))
            })
        var gates = arm.throttleGateState()
        if gates[subscriptionID] == nil { gates[subscriptionID] = 0 }
        let subscriptions = gates.keys.sorted()
        page.gauge(
            "vmssd_throttle_gate_open",
            help: "1 while ARM calls for the subscription may be sent, 0 while throttled.",
            subscriptions.map { ([("subscription", $0)], gates[$0]! > 0 ? 0 : 1) })
        page.gauge(
            "vmssd_throttle_gate_seconds_until_open",
            help: "Seconds until a throttled subscription's gate opens; 0 when open.",
            subscriptions.map { ([("subscription", $0)], gates[$0]!) })
        page.counter(
            "vmssd_token_renewals_total", help: "Access tokens obtained, the first one included.",
            [([], Double(arm.counters.tokenRenewals))])
        page.gauge(
            "vmssd_ready", help: "1 when vmssd is ready to answer (as /readyz), else 0.",
            [([], readiness.check().0 ? 1 : 0)])
        return page.text
    }
}
