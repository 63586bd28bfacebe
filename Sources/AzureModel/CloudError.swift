/// Why a cloud read gave no answer, sorted into the cases the verdict rules tell apart.
public enum CloudError: Error, Sendable, Equatable {
    /// The thing, its parent or its resource group answered 404 with a code that means deleted.
    case gone(code: String)
    /// The subscription is throttled until the given time, in seconds since the Unix epoch.
    case throttled(until: Double)
    /// A failure worth retrying later: a timeout, a reset, a 408 or a 5xx.
    case transient(String)
    /// A failure that retrying will not fix: authorization, configuration, an unreadable body.
    case fault(String)

    /// Whether this error is positive evidence that the resource no longer exists.
    public var isGone: Bool {
        if case .gone = self { return true }
        return false
    }
}
