import AzureModel
import Foundation
import Synchronization

/// The time source the client, gate and tokens use, so tests can drive time by hand.
public struct ARMClock: Sendable {
    /// Seconds since the Unix epoch.
    public var now: @Sendable () -> Double
    /// Suspends the calling task (never blocks a thread) for the given seconds.
    public var sleep: @Sendable (Double) async -> Void

    public init(
        now: @escaping @Sendable () -> Double, sleep: @escaping @Sendable (Double) async -> Void
    ) {
        self.now = now
        self.sleep = sleep
    }

    /// The wall clock and `Task.sleep`.
    public static let system = ARMClock(
        now: { Date().timeIntervalSince1970 },
        sleep: { seconds in try? await Task.sleep(for: .milliseconds(Int64(max(0, seconds) * 1000)))
        })
}

/// Reads `Retry-After`.
public enum RetryAfter {
    /// How long to wait when a 429 carries no usable `Retry-After`.
    public static let defaultSeconds = 30.0
    /// Longer waits are cut to this, so a wrong header cannot silence the program for days.
    public static let maximumSeconds = 3600.0

    /// Seconds to wait from `now`: a delay in seconds or an HTTP date; the default when absent
    /// or unreadable; at least 1 s and at most an hour.
    public static func seconds(_ header: String?, now: Double) -> Double {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else {
            return defaultSeconds
        }
        if let seconds = Double(header), seconds.isFinite, seconds >= 0 {
            return min(max(seconds, 1), maximumSeconds)
        }
        for format in [
            "EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz",
            "EEE MMM d HH:mm:ss yyyy",
        ] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            if let date = formatter.date(from: header) {
                return min(max(date.timeIntervalSince1970 - now, 1), maximumSeconds)
            }
        }
        return defaultSeconds
    }
}

/// Sorts an ARM answer into the `CloudError` cases, in this one place.
public enum ARMClassifier {
    /// The 404 codes that mean the resource, its parent or its group was deleted.
    public static let goneCodes: Set<String> = [
        "resourcenotfound", "parentresourcenotfound", "resourcegroupnotfound", "notfound",
    ]

    /// Statuses worth retrying with backoff.
    public static func isTransient(status: Int) -> Bool {
        status == 408 || (500...599).contains(status)
    }

    /// The error an HTTP answer stands for, or nil for a 2xx.
    /// - Parameters:
    ///   - code: `error.code` of the body, when it had one.
    ///   - retryAfter: the `Retry-After` header of a 429.
    ///   - now: seconds since the epoch, for the throttled-until time.
    public static func classify(
        status: Int, code: String?, message: String? = nil, retryAfter: String? = nil,
        now: Double, operation: String = "ARM request"
    ) -> CloudError? {
        if (200...299).contains(status) { return nil }
        let codeText = code.map { " \($0)" } ?? ""
        let detail = message.map { ": " + String($0.prefix(300)) } ?? ""
        let summary = "\(operation) answered HTTP \(status)\(codeText)\(detail)"
        switch status {
        case 404:
            if let code, goneCodes.contains(code.lowercased()) { return .gone(code: code) }
            return .fault(summary)
        case 429:
            return .throttled(until: now + RetryAfter.seconds(retryAfter, now: now))
        case _ where isTransient(status: status):
            return .transient(summary)
        default:
            return .fault(summary)
        }
    }

    /// The error a failed URLSession request stands for: timeouts and resets are transient,
    /// anything else (a refused TLS handshake, a bad URL) a fault.
    public static func classify(transportError error: any Error, operation: String) -> CloudError {
        if let urlError = error as? URLError {
            switch urlError.code {
            case .timedOut, .networkConnectionLost, .cannotConnectToHost, .notConnectedToInternet,
                .dnsLookupFailed, .cannotFindHost, .badServerResponse, .cannotParseResponse,
                .resourceUnavailable:
                return .transient("\(operation) failed: \(urlError.code.name)")
            default:
                return .fault("\(operation) failed: \(urlError.code.name)")
            }
        }
        return .transient("\(operation) failed: \(type(of: error))")
    }
}

extension URLError.Code {
    /// A stable name for messages (the URL, which could hold a query, is left out).
    var name: String {
        switch self {
        case .timedOut: "timed out"
        case .networkConnectionLost: "connection lost"
        case .cannotConnectToHost: "cannot connect"
        case .badServerResponse: "bad server response"
        case .cannotParseResponse: "unparseable response"
        default: "URL error \(rawValue)"
        }
    }
}

/// Per-subscription admission: a "throttled until" gate closed by a 429, and a token bucket
/// limiting the steady request rate.
///
/// While the gate is closed every caller gets `.throttled(until:)` at once, without sending:
/// calls during a penalty only extend it. When the bucket is empty the caller waits
/// (asynchronously) for the next token instead of failing, so a burst is smoothed, not refused.
public final class ThrottleGate: Sendable {
    private struct Subscription {
        var closedUntil: Double = 0
        var tokens: Double
        var refilledAt: Double
    }

    private let state = Mutex<[String: Subscription]>([:])
    private let clock: ARMClock
    /// Tokens added per second.
    public let qps: Double
    /// Bucket size.
    public let burst: Int

    public init(qps: Double, burst: Int, clock: ARMClock = .system) {
        self.qps = max(qps, 0.001)
        self.burst = max(burst, 1)
        self.clock = clock
    }

    /// Returns once a request to `subscription` may leave, or throws `.throttled` when the gate
    /// is closed.
    public func admit(_ subscription: String) async throws(CloudError) {
        while true {
            let now = clock.now()
            let decision: Result<Double, CloudError> = state.withLock { all in
                var entry =
                    all[subscription] ?? Subscription(tokens: Double(burst), refilledAt: now)
                defer { all[subscription] = entry }
                if entry.closedUntil > now { return .failure(.throttled(until: entry.closedUntil)) }
                entry.tokens = min(Double(burst), entry.tokens + (now - entry.refilledAt) * qps)
                entry.refilledAt = now
                if entry.tokens >= 1 {
                    entry.tokens -= 1
                    return .success(0)
                }
                return .success((1 - entry.tokens) / qps)
            }
            let wait = try decision.get()
            if wait == 0 { return }
            await clock.sleep(wait)
        }
    }

    /// Closes the gate until `until` (never shortening a longer penalty already set).
    public func close(_ subscription: String, until: Double) {
        let now = clock.now()
        state.withLock { all in
            var entry = all[subscription] ?? Subscription(tokens: Double(burst), refilledAt: now)
            entry.closedUntil = max(entry.closedUntil, until)
            all[subscription] = entry
        }
    }

    /// Seconds until each subscription's gate opens; 0 for an open gate.
    public func secondsUntilOpen() -> [String: Double] {
        let now = clock.now()
        return state.withLock { all in all.mapValues { max(0, $0.closedUntil - now) } }
    }
}
