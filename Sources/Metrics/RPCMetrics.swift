import GRPCTransport
import Synchronization

/// Counts RPCs by method and gRPC status code, with a latency histogram per method.
///
/// Recording is three relaxed atomic additions into storage allocated once at `init`: no lock,
/// no allocation, safe from any number of threads at once. A method not named at `init` is
/// counted under `other`, so a client sending arbitrary paths cannot grow the label set.
/// A status code outside 0...16 is counted as `UNKNOWN`, as gRPC treats unknown codes.
public final class RPCMetrics: Sendable {
    /// Bucket bounds in seconds used unless `init` is given others: from 100 µs, where cache
    /// hits land, up to 10 s, past any Azure call with retries.
    public static let defaultDurationBounds: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
        5, 10,
    ]

    /// The label value of calls to methods not named at `init`.
    public static let otherMethod = "other"

    /// The canonical gRPC status code names, indexed by code, used as the `code` label.
    static let codeNames = (0...16).map { GRPCStatus.Code(rawValue: Int32($0)).description }

    /// The methods named at `init`, without duplicates, in order; `other` is not among them.
    public let methods: [String]
    /// The histogram's bucket bounds in seconds.
    public let durationBounds: [Double]
    private let indexByMethod: [String: Int]
    /// One row per method plus one for `other`, laid out as: a counter per status code, a
    /// counter per bucket (bounds, then above the largest), the sum of durations in nanoseconds.
    /// Integer nanoseconds keep the sum exact under concurrent addition, which a Double is not.
    private let rowWidth: Int
    private let rowCount: Int
    // Written only through `Atomic` operations and freed only in `deinit`, so sharing it
    // across threads is safe although the pointer type is not `Sendable`.
    private nonisolated(unsafe) let cells: UnsafeMutablePointer<Atomic<UInt64>>

    /// Creates counters for the given full method paths, e.g.
    /// `/cloudprovider.instances.v1.Instances/InstanceExists`, all at zero.
    ///
    /// - Parameter durationBounds: finite bucket bounds in seconds, strictly increasing.
    public init(methods: [String], durationBounds: [Double] = RPCMetrics.defaultDurationBounds) {
        precondition(
            zip(durationBounds, durationBounds.dropFirst()).allSatisfy { $0 < $1 }
                && durationBounds.allSatisfy(\.isFinite),
            "duration bounds must be finite and strictly increasing")
        var unique: [String] = []
        var indexByMethod: [String: Int] = [:]
        for method in methods where indexByMethod[method] == nil {
            indexByMethod[method] = unique.count
            unique.append(method)
        }
        self.methods = unique
        self.indexByMethod = indexByMethod
        self.durationBounds = durationBounds
        self.rowWidth = Self.codeNames.count + durationBounds.count + 2
        self.rowCount = unique.count + 1
        let cellCount = rowWidth * rowCount
        cells = UnsafeMutablePointer<Atomic<UInt64>>.allocate(capacity: cellCount)
        for offset in 0..<cellCount {
            (cells + offset).initialize(to: Atomic(0))
        }
    }

    deinit {
        cells.deinitialize(count: rowWidth * rowCount)
        cells.deallocate()
    }

    /// The index to pass to `record(methodIndex:code:seconds:)` for a method, or `nil` if the
    /// method was not named at `init` (such calls count as `other`).
    public func index(of method: String) -> Int? {
        indexByMethod[method]
    }

    /// Counts one finished call to `method` with gRPC status `code` that took `seconds`.
    public func record(method: String, code: Int32, seconds: Double) {
        record(methodIndex: indexByMethod[method] ?? methods.count, code: code, seconds: seconds)
    }

    /// Counts one finished call to the method at `methodIndex` (from `index(of:)`); an index
    /// out of range counts as `other`. Negative or NaN durations add nothing to the sum.
    public func record(methodIndex: Int, code: Int32, seconds: Double) {
        let row = (0..<methods.count).contains(methodIndex) ? methodIndex : methods.count
        let codeSlot = (0..<Int32(Self.codeNames.count)).contains(code) ? Int(code) : 2
        let base = cells + row * rowWidth
        base[codeSlot].wrappingAdd(1, ordering: .relaxed)
        base[Self.codeNames.count + bucket(for: seconds)].wrappingAdd(1, ordering: .relaxed)
        // Clamp so that a wild duration cannot trap in the conversion.
        let nanoseconds = seconds > 0 ? UInt64(min(seconds * 1e9, 1e18)) : 0
        base[rowWidth - 1].wrappingAdd(nanoseconds, ordering: .relaxed)
    }

    /// How many calls to `method` (or `other`) ended with `code` so far.
    public func count(method: String, code: Int32) -> UInt64 {
        let row = method == Self.otherMethod ? methods.count : indexByMethod[method]
        guard let row, (0..<Int32(Self.codeNames.count)).contains(code) else { return 0 }
        return cells[row * rowWidth + Int(code)].load(ordering: .relaxed)
    }

    /// Writes `vmssd_rpc_requests_total{method,code}` and the histogram
    /// `vmssd_rpc_duration_seconds{method}`. Every named method appears (at zero before its
    /// first call), `other` only once it has been counted, and a code only once it has been
    /// seen for that method, except `OK`, which is always there.
    public func write(to text: inout PrometheusText) {
        var requests: [(labels: [(String, String)], value: Double)] = []
        var durations: [(labels: [(String, String)], bucketCounts: [UInt64], sum: Double)] = []
        let bucketCount = durationBounds.count + 1
        for row in 0..<rowCount {
            let base = cells + row * rowWidth
            let isOther = row == methods.count
            let name = isOther ? Self.otherMethod : methods[row]
            var counts = [UInt64](repeating: 0, count: bucketCount)
            for bucket in 0..<bucketCount {
                counts[bucket] = base[Self.codeNames.count + bucket].load(ordering: .relaxed)
            }
            let seen = counts.reduce(0, &+) > 0
            if isOther && !seen { continue }
            for (code, codeName) in Self.codeNames.enumerated() {
                let value = base[code].load(ordering: .relaxed)
                guard value > 0 || (code == 0 && !isOther) else { continue }
                requests.append(([("method", name), ("code", codeName)], Double(value)))
            }
            let sum = Double(base[rowWidth - 1].load(ordering: .relaxed)) / 1e9
            durations.append(([("method", name)], counts, sum))
        }
        text.counter(
            "vmssd_rpc_requests_total", help: "gRPC calls handled, by method and status code.",
            requests)
        text.histogram(
            "vmssd_rpc_duration_seconds", help: "Time from request to response, by method.",
            upperBounds: durationBounds, durations)
    }

    /// The bucket an observation falls in: the first bound it does not exceed, or the last
    /// bucket (above every bound, also for NaN).
    @inline(__always)
    private func bucket(for seconds: Double) -> Int {
        durationBounds.withUnsafeBufferPointer { bounds in
            var index = 0
            while index < bounds.count && !(seconds <= bounds[index]) {
                index += 1
            }
            return index
        }
    }
}
