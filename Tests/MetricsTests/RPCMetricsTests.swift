import Dispatch
import Testing

@testable import Metrics

@Suite("RPC counters")
struct RPCMetricsTests {
    static let exists = "/cloudprovider.instances.v1.Instances/InstanceExists"
    static let shutdown = "/cloudprovider.instances.v1.Instances/InstanceShutdown"

    @Test("concurrent records from many threads add up exactly")
    func concurrentRecordsAddUp() throws {
        let metrics = RPCMetrics(methods: [Self.exists, Self.shutdown])
        let threads = 8
        let perThread = 50_000

        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            let index = metrics.index(of: Self.exists)!
            for call in 0..<perThread {
                if call % 2 == 0 {
                    metrics.record(methodIndex: index, code: 0, seconds: 0.5)
                } else {
                    metrics.record(method: Self.shutdown, code: 5, seconds: 0.25)
                }
            }
            metrics.record(method: "/unknown.Service/Method", code: Int32(thread), seconds: 3)
        }

        let half = UInt64(threads * perThread / 2)
        #expect(metrics.count(method: Self.exists, code: 0) == half)
        #expect(metrics.count(method: Self.shutdown, code: 5) == half)
        #expect(metrics.count(method: Self.shutdown, code: 0) == 0)
        var page = PrometheusText()
        metrics.write(to: &page)
        let text = page.text
        #expect(
            text.contains(#"vmssd_rpc_duration_seconds_count{method="\#(Self.exists)"} \#(half)"#))
        #expect(
            text.contains(#"vmssd_rpc_duration_seconds_sum{method="\#(Self.exists)"} \#(half / 2)"#)
        )
        #expect(
            text.contains(
                #"vmssd_rpc_duration_seconds_sum{method="\#(Self.shutdown)"} \#(half / 4)"#))
        #expect(text.contains(#"vmssd_rpc_duration_seconds_count{method="other"} \#(threads)"#))
    }

    @Test("an unknown method counts as other and an unknown code as UNKNOWN")
    func unknownsAreFolded() {
        let metrics = RPCMetrics(methods: [Self.exists])

        metrics.record(method: "/evil/\"path\"", code: 99, seconds: 0.001)
        metrics.record(methodIndex: 42, code: -1, seconds: 0.001)

        #expect(metrics.count(method: "other", code: 2) == 2)
        var page = PrometheusText()
        metrics.write(to: &page)
        #expect(page.text.contains(#"vmssd_rpc_requests_total{method="other",code="UNKNOWN"} 2"#))
        #expect(!page.text.contains("evil"))
    }

    @Test("the page lists every method at zero before any call, and other only once seen")
    func zeroSeriesBeforeCalls() {
        let metrics = RPCMetrics(methods: [Self.exists, Self.shutdown])
        var page = PrometheusText()
        metrics.write(to: &page)

        #expect(
            page.text.contains(#"vmssd_rpc_requests_total{method="\#(Self.exists)",code="OK"} 0"#))
        #expect(
            page.text.contains(
                #"vmssd_rpc_duration_seconds_bucket{method="\#(Self.shutdown)",le="+Inf"} 0"#))
        #expect(!page.text.contains(#"method="other""#))
        #expect(page.text.components(separatedBy: "# TYPE ").count == 3)
    }

    @Test("a duration lands in the first bucket whose bound it does not exceed")
    func bucketsByDuration() {
        let metrics = RPCMetrics(methods: ["/m"], durationBounds: [0.001, 0.01])

        for seconds in [0.0005, 0.001, 0.002, 5, -1, .nan] {
            metrics.record(method: "/m", code: 0, seconds: seconds)
        }

        var page = PrometheusText()
        metrics.write(to: &page)
        #expect(page.text.contains(#"vmssd_rpc_duration_seconds_bucket{method="/m",le="0.001"} 3"#))
        #expect(page.text.contains(#"vmssd_rpc_duration_seconds_bucket{method="/m",le="0.01"} 4"#))
        #expect(page.text.contains(#"vmssd_rpc_duration_seconds_bucket{method="/m",le="+Inf"} 6"#))
        #expect(page.text.contains(#"vmssd_rpc_duration_seconds_sum{method="/m"} 5.0035"#))
    }
}
