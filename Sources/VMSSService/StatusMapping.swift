import GRPCTransport
import VMSSCache

extension GRPCStatus {
    /// The one place where a failed verdict becomes the status a client sees.
    init(_ failure: VerdictFailure) {
        switch failure {
        case .failedPrecondition(let message):
            self.init(code: .failedPrecondition, message: message)
        case .invalidArgument(let message):
            self.init(code: .invalidArgument, message: message)
        case .notFound(let message):
            self.init(code: .notFound, message: message)
        case .unavailable(let message, let retryAfterSeconds):
            let pushback = retryAfterSeconds.map { Int(($0 * 1000).rounded(.up)) }
            self.init(
                code: .unavailable, message: message,
                retryPushbackMilliseconds: pushback.map { max($0, 0) })
        }
    }

    /// The status for request bytes that are not the message the method takes.
    static func unparsable(_ messageName: String) -> GRPCStatus {
        GRPCStatus(code: .internalError, message: "request is not a valid \(messageName)")
    }
}
