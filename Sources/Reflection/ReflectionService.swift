import GRPCTransport

/// Serves gRPC server reflection, `grpc.reflection.v1` and `grpc.reflection.v1alpha`
/// (`ServerReflectionInfo`), from a descriptor set fixed when the server is built.
///
/// Each request is answered as soon as it arrives, in order, without waiting for the client to
/// half-close; the stream ends OK when it does. A question about something unknown is answered
/// in-band with an `error_response` of NOT_FOUND, and the stream carries on. Request bytes that
/// do not parse end the stream with INVALID_ARGUMENT.
public final class ReflectionService: Sendable {
    /// The two method paths served.
    public static let paths = [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]

    private let index: DescriptorIndex
    private let listed: [String]

    /// A reflection service over `index`, listing `services` (the services the server really
    /// serves) or, when nil, every service in the descriptor set.
    public init(index: DescriptorIndex, services: [String]? = nil) {
        self.index = index
        self.listed = (services ?? index.services).sorted()
    }

    /// The handlers of both versions, keyed by `:path`.
    public var handlers: [String: RPCHandler] {
        var handlers: [String: RPCHandler] = [:]
        for path in Self.paths {
            handlers[path] = .bidirectionalStreaming { [self] _, responder in
                RequestStreamObserver(
                    onMessage: { request in
                        do {
                            responder.send(try self.answer(request))
                        } catch {
                            responder.finish(
                                GRPCStatus(
                                    code: .invalidArgument,
                                    message: "request is not a valid ServerReflectionRequest"))
                        }
                    },
                    onEnd: { responder.finish(.ok) })
            }
        }
        return handlers
    }

    /// The serialized `ServerReflectionResponse` to one serialized `ServerReflectionRequest`.
    /// - Throws: `ProtoWireError` when the request does not parse.
    func answer(_ request: [UInt8]) throws(ProtoWireError) -> [UInt8] {
        var host = ""
        var question: (number: UInt64, value: ProtoReader.Value)?
        var reader = ProtoReader(request[...])
        while let field = try reader.next() {
            if field.number == 1, case .bytes(let bytes) = field.value {
                host = bytes.text
            } else if (3...7).contains(field.number) {
                question = field  // a oneof: the last one wins
            }
        }
        var response = ProtoWriter()
        response.string(1, host)
        response.bytes(2, request)
        guard let question, case .bytes(let argument) = question.value else {
            response.bytes(7, error(.invalidArgument, "the request asks nothing"))
            return response.bytes
        }
        switch question.number {
        case 3:
            fileResponse(
                index.fileWithDependencies(named: argument.text), "file \(argument.text)",
                &response)
        case 4:
            let file = index.fileName(definingSymbol: argument.text)
            fileResponse(
                file.flatMap { index.fileWithDependencies(named: $0) },
                "symbol \(argument.text)", &response)
        case 5:
            response.bytes(7, error(.notFound, "no extensions are defined"))
        case 6:
            let type = argument.text
            if index.isMessageType(type) {
                var numbers = ProtoWriter()
                numbers.string(1, type.hasPrefix(".") ? String(type.dropFirst()) : type)
                response.bytes(5, numbers.bytes)
            } else {
                response.bytes(7, error(.notFound, "unknown message type \(type)"))
            }
        default:
            var list = ProtoWriter()
            for service in listed {
                var entry = ProtoWriter()
                entry.string(1, service)
                list.bytes(1, entry.bytes)
            }
            response.bytes(6, list.bytes)
        }
        return response.bytes
    }

    private func fileResponse(
        _ files: [DescriptorIndex.File]?, _ what: String, _ response: inout ProtoWriter
    ) {
        guard let files else {
            response.bytes(7, error(.notFound, "unknown \(what)"))
            return
        }
        var descriptors = ProtoWriter()
        for file in files {
            descriptors.bytes(1, file.serialized)
        }
        response.bytes(4, descriptors.bytes)
    }

    private func error(_ code: GRPCStatus.Code, _ message: String) -> [UInt8] {
        var error = ProtoWriter()
        error.varint(1, UInt64(code.rawValue))
        error.string(2, message)
        return error.bytes
    }
}
