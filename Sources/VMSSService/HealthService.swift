import GRPCTransport
import InstancesProto
import Synchronization

/// Serves `grpc.health.v1.Health`: `Check` answers the current status, `Watch` streams every
/// change. The empty service name stands for the whole server.
public final class HealthService: Sendable {
    private struct Watcher {
        let service: String
        let responder: StreamResponder
    }

    private struct State {
        var statuses: [String: ServingStatus]
        var watchers: [Int: Watcher] = [:]
        var nextWatcherID = 0
    }

    private let state: Mutex<State>

    /// A health service knowing the given service names, all starting as `initialStatus`.
    public init(services: [String], initialStatus: ServingStatus = .notServing) {
        var statuses: [String: ServingStatus] = ["": initialStatus]
        for service in services {
            statuses[service] = initialStatus
        }
        self.state = Mutex(State(statuses: statuses))
    }

    /// Sets every known service, and the server as a whole, to `status`, telling each watcher
    /// whose service changed.
    public func setStatus(_ status: ServingStatus) {
        let notify: [(StreamResponder, ServingStatus)] = state.withLock { state in
            guard state.statuses.values.contains(where: { $0 != status }) else { return [] }
            for service in state.statuses.keys {
                state.statuses[service] = status
            }
            return state.watchers.values.map { ($0.responder, status) }
        }
        for (responder, status) in notify {
            responder.send(HealthCheckResponse(status: status).serializedBytes())
        }
    }

    /// The status of one service, nil when the service is unknown.
    public func status(of service: String) -> ServingStatus? {
        state.withLock { $0.statuses[service] }
    }

    /// The handlers of `Check` and `Watch`, keyed by `:path`.
    public var handlers: [String: RPCHandler] {
        [
            "/grpc.health.v1.Health/Check": .unary(check),
            "/grpc.health.v1.Health/Watch": .serverStreaming(watch),
        ]
    }

    private func check(_ bytes: [UInt8], _ context: CallContext, _ responder: UnaryResponder) {
        guard let request = try? HealthCheckRequest(serializedBytes: bytes) else {
            return responder.fail(.unparsable("HealthCheckRequest"))
        }
        guard let status = status(of: request.service) else {
            return responder.fail(
                GRPCStatus(code: .notFound, message: "unknown service \(request.service)"))
        }
        responder.succeed(HealthCheckResponse(status: status).serializedBytes())
    }

    private func watch(_ bytes: [UInt8], _ context: CallContext, _ responder: StreamResponder) {
        guard let request = try? HealthCheckRequest(serializedBytes: bytes) else {
            return responder.finish(.unparsable("HealthCheckRequest"))
        }
        let (id, current) = state.withLock { state in
            let id = state.nextWatcherID
            state.nextWatcherID += 1
            state.watchers[id] = Watcher(service: request.service, responder: responder)
            return (id, state.statuses[request.service] ?? .serviceUnknown)
        }
        responder.onCancel { [weak self] in
            _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
        }
        responder.send(HealthCheckResponse(status: current).serializedBytes())
    }
}
