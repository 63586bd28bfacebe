import AzureModel
import Foundation
import GRPCTransport
import InstancesProto
import Synchronization
import VMSSCache
import VMSSLog

/// Serves `cloudprovider.instances.v1.Instances`: decodes each request, asks the shared cache,
/// and encodes the verdict or the status it maps to.
public final class InstancesService: Sendable {
    /// The service's full name, as `:path` and health checks spell it.
    public static let name = "cloudprovider.instances.v1.Instances"

    private let cache: InstanceCache
    private let logger: Logger

    /// A service answering from `cache`, logging one line per call at verbosity 2.
    public init(cache: InstanceCache, logger: Logger) {
        self.cache = cache
        self.logger = logger
    }

    /// The handlers of every method, keyed by `:path`.
    public var handlers: [String: RPCHandler] {
        let prefix = "/\(InstancesService.name)/"
        return [
            prefix + "InstanceExistsByProviderID":
                byProviderID("InstanceExistsByProviderID", answerExists),
            prefix + "InstanceShutdownByProviderID":
                byProviderID("InstanceShutdownByProviderID", answerShutdown),
            prefix + "InstanceExists": byNode("InstanceExists", answerExists),
            prefix + "InstanceShutdown": byNode("InstanceShutdown", answerShutdown),
            prefix + "InstanceMetadata": byNode("InstanceMetadata", answerMetadata),
            prefix + "InstancesExist": .unary(instancesExist),
        ]
    }

    /// A method taking a `ProviderIDRequest`: decoded, its ID parsed, then answered.
    private func byProviderID(
        _ method: String,
        _ answer: @escaping @Sendable (NodeQuestion, CallLog, UnaryResponder) -> Void
    ) -> RPCHandler {
        .unary { [self] bytes, _, responder in
            guard let request = try? ProviderIDRequest(serializedBytes: bytes) else {
                return responder.fail(.unparsable("ProviderIDRequest"))
            }
            let call = CallLog(logger, method: method, request.providerID)
            guard let question = question(providerID: request.providerID, call, responder) else {
                return
            }
            answer(question, call, responder)
        }
    }

    /// A method taking a `NodeRequest`: decoded, checked, then answered.
    private func byNode(
        _ method: String,
        _ answer: @escaping @Sendable (NodeQuestion, CallLog, UnaryResponder) -> Void
    ) -> RPCHandler {
        .unary { [self] bytes, _, responder in
            guard let request = try? NodeRequest(serializedBytes: bytes) else {
                return responder.fail(.unparsable("NodeRequest"))
            }
            let call = CallLog(logger, method: method, request.providerID, node: request.nodeName)
            guard let question = question(node: request, call, responder) else { return }
            answer(question, call, responder)
        }
    }

    private func answerExists(
        _ question: NodeQuestion, _ call: CallLog, _ responder: UnaryResponder
    ) {
        @Sendable func respond(_ result: Result<Bool, VerdictFailure>) {
            switch result {
            case .success(let exists):
                responder.succeed(ExistsResponse(exists: exists).serializedBytes())
            case .failure(let failure): responder.fail(GRPCStatus(failure))
            }
        }
        // The reporting overload only when the line is written: the quiet path stays as cheap.
        guard call.isLogging else { return cache.instanceExists(question, completion: respond) }
        cache.instanceExists(question) { (result: Result<Bool, VerdictFailure>, info: AnswerInfo) in
            call.finish(result.map { "exists=\($0)" }, info)
            respond(result)
        }
    }

    private func answerShutdown(
        _ question: NodeQuestion, _ call: CallLog, _ responder: UnaryResponder
    ) {
        @Sendable func respond(_ result: Result<Bool, VerdictFailure>) {
            switch result {
            case .success(let shutdown):
                responder.succeed(ShutdownResponse(shutdown: shutdown).serializedBytes())
            case .failure(let failure):
                responder.fail(GRPCStatus(failure))
            }
        }
        guard call.isLogging else { return cache.instanceShutdown(question, completion: respond) }
        cache.instanceShutdown(question) {
            (result: Result<Bool, VerdictFailure>, info: AnswerInfo) in
            call.finish(result.map { "shutdown=\($0)" }, info)
            respond(result)
        }
    }

    private func answerMetadata(
        _ question: NodeQuestion, _ call: CallLog, _ responder: UnaryResponder
    ) {
        @Sendable func respond(_ result: Result<InstanceMetadata, VerdictFailure>) {
            switch result {
            case .success(let metadata):
                let response = InstanceMetadataResponse(
                    providerID: metadata.providerID,
                    instanceType: metadata.instanceType,
                    nodeAddresses: metadata.addresses.map {
                        NodeAddress(type: $0.type, address: $0.address)
                    },
                    zone: metadata.zone,
                    region: metadata.region)
                responder.succeed(response.serializedBytes())
            case .failure(let failure):
                responder.fail(GRPCStatus(failure))
            }
        }
        guard call.isLogging else { return cache.instanceMetadata(question, completion: respond) }
        cache.instanceMetadata(question) {
            (result: Result<InstanceMetadata, VerdictFailure>, info: AnswerInfo) in
            call.finish(result.map { "instance_type=\($0.instanceType)" }, info)
            respond(result)
        }
    }

    private func instancesExist(
        _ bytes: [UInt8], _ context: CallContext, _ responder: UnaryResponder
    ) {
        guard let request = try? InstancesExistRequest(serializedBytes: bytes) else {
            return responder.fail(.unparsable("InstancesExistRequest"))
        }
        let call = CallLog(logger, method: "InstancesExist", "", node: "")
        let batch = VerdictBatch(providerIDs: request.providerIDs) { verdicts in
            call.finishBatch(verdicts)
            responder.succeed(InstancesExistResponse(verdicts: verdicts).serializedBytes())
        }
        for (index, text) in request.providerIDs.enumerated() {
            let providerID: ProviderID
            do {
                providerID = try ProviderID(parsing: text)
            } catch {
                batch.record(index, .failure(.invalidArgument(error.message)))
                continue
            }
            cache.instanceExists(NodeQuestion(providerID: providerID)) { result in
                batch.record(index, result)
            }
        }
    }

    /// The question for a provider ID, or nil after refusing a malformed one.
    private func question(
        providerID text: String, _ call: CallLog, _ responder: UnaryResponder
    ) -> NodeQuestion? {
        do {
            return NodeQuestion(providerID: try ProviderID(parsing: text))
        } catch {
            let failure = VerdictFailure.invalidArgument(error.message)
            call.finish(Result<String, VerdictFailure>.failure(failure), nil)
            responder.fail(GRPCStatus(failure))
            return nil
        }
    }

    /// The question for a node, or nil after refusing a malformed provider ID.
    private func question(
        node request: NodeRequest, _ call: CallLog, _ responder: UnaryResponder
    ) -> NodeQuestion? {
        // A Node's name is a DNS subdomain: at most 253 bytes. Anything longer names no node.
        guard request.nodeName.utf8.count <= 253 else {
            let failure = VerdictFailure.invalidArgument(
                "node name is \(request.nodeName.utf8.count) bytes long; Kubernetes node names "
                    + "have at most 253")
            call.finish(Result<String, VerdictFailure>.failure(failure), nil)
            responder.fail(GRPCStatus(failure))
            return nil
        }
        guard var question = question(providerID: request.providerID, call, responder) else {
            return nil
        }
        question.nodeName = request.nodeName
        if request.creationUnixSeconds > 0 {
            question.createdAt = Double(request.creationUnixSeconds)
        }
        return question
    }
}

/// Gathers the verdicts of one `InstancesExist` call, which arrive from any thread in any order,
/// and hands them over once the last one is in.
private final class VerdictBatch: Sendable {
    private struct State {
        var verdicts: [InstanceVerdict]
        var pending: Int
    }

    private let state: Mutex<State>
    private let done: @Sendable ([InstanceVerdict]) -> Void

    init(providerIDs: [String], done: @escaping @Sendable ([InstanceVerdict]) -> Void) {
        let verdicts = providerIDs.map { InstanceVerdict(providerID: $0, exists: false) }
        self.state = Mutex(State(verdicts: verdicts, pending: providerIDs.count))
        self.done = done
        if providerIDs.isEmpty {
            done([])
        }
    }

    func record(_ index: Int, _ result: Result<Bool, VerdictFailure>) {
        let finished: [InstanceVerdict]? = state.withLock { state in
            switch result {
            case .success(let exists):
                state.verdicts[index].exists = exists
            case .failure(let failure):
                let status = GRPCStatus(failure)
                state.verdicts[index].code = status.code.rawValue
                state.verdicts[index].message = status.message
            }
            state.pending -= 1
            return state.pending == 0 ? state.verdicts : nil
        }
        if let finished {
            done(finished)
        }
    }
}

/// The per-call log line written at verbosity 2 once the call is answered: method, provider ID,
/// node, verdict (or status code), cache outcome, ARM calls started and duration.
struct CallLog: Sendable {
    private let logger: Logger
    private let method: String
    private let providerID: String
    private let node: String
    private let started: ContinuousClock.Instant?

    init(_ logger: Logger, method: String, _ providerID: String, node: String = "") {
        self.logger = logger
        self.method = method
        self.providerID = providerID
        self.node = node
        self.started = logger.enabled(2) ? .now : nil
    }

    /// Whether a line will be written; when not, nothing about the call is measured.
    var isLogging: Bool { started != nil }

    /// Writes the line for one answer; `info` is nil when the cache was never asked.
    func finish<Value>(_ result: Result<Value, VerdictFailure>, _ info: AnswerInfo?) {
        guard let started else { return }
        let verdict: String
        switch result {
        case .success(let value): verdict = "\(value)"
        case .failure(let failure): verdict = "\(GRPCStatus(failure).code)"
        }
        logger.info(
            "rpc", level: 2,
            [
                "method": method, "provider_id": providerID, "node": node, "verdict": verdict,
                "cache": info?.outcome.rawValue ?? "none", "arm_calls": info?.backendCalls ?? 0,
                "duration_us": Self.microseconds(since: started),
            ])
    }

    /// Writes the line for a batch: how many IDs exist, are gone, or failed.
    func finishBatch(_ verdicts: [InstanceVerdict]) {
        guard let started else { return }
        let failed = verdicts.filter { $0.code != 0 }.count
        let exists = verdicts.filter { $0.code == 0 && $0.exists }.count
        logger.info(
            "rpc", level: 2,
            [
                "method": method, "ids": verdicts.count, "exists": exists,
                "gone": verdicts.count - exists - failed, "failed": failed,
                "duration_us": Self.microseconds(since: started),
            ])
    }

    private static func microseconds(since started: ContinuousClock.Instant) -> Int64 {
        let elapsed = ContinuousClock.now - started
        return elapsed.components.seconds * 1_000_000
            + elapsed.components.attoseconds / 1_000_000_000_000
    }
}
