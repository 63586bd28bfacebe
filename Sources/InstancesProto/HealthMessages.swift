internal import CInstancesProto

/// Asks for the health of one service, or of the whole server when the name is empty.
public struct HealthCheckRequest: ProtoMessage, Equatable {
    public var service: String

    public init(service: String = "") {
        self.service = service
    }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        guard !stringFieldHoldsNUL(bytes, fields: [1]) else {
            throw ProtoDecodingError(messageName: "HealthCheckRequest")
        }
        self = try unpack(
            bytes, as: "HealthCheckRequest",
            grpc__health__v1__health_check_request__unpack,
            grpc__health__v1__health_check_request__free_unpacked
        ) { message in
            HealthCheckRequest(service: string(message.service))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = CStringArena()
        var message = Grpc__Health__V1__HealthCheckRequest()
        grpc__health__v1__health_check_request__init(&message)
        message.service = arena.copy(service)
        return pack(
            &message,
            grpc__health__v1__health_check_request__get_packed_size,
            grpc__health__v1__health_check_request__pack)
    }
}

/// The serving status of the standard gRPC health protocol.
public enum ServingStatus: Int32, Sendable {
    case unknown = 0
    case serving = 1
    case notServing = 2
    case serviceUnknown = 3
}

/// The health of one service.
public struct HealthCheckResponse: ProtoMessage, Equatable {
    public var status: ServingStatus

    public init(status: ServingStatus) {
        self.status = status
    }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        self = try unpack(
            bytes, as: "HealthCheckResponse",
            grpc__health__v1__health_check_response__unpack,
            grpc__health__v1__health_check_response__free_unpacked
        ) { message in
            let status = ServingStatus(rawValue: Int32(message.status.rawValue))
            return HealthCheckResponse(status: status ?? .unknown)
        }
    }

    public func serializedBytes() -> [UInt8] {
        var message = Grpc__Health__V1__HealthCheckResponse()
        grpc__health__v1__health_check_response__init(&message)
        message.status = Grpc__Health__V1__HealthCheckResponse__ServingStatus(
            rawValue: UInt32(status.rawValue))
        return pack(
            &message,
            grpc__health__v1__health_check_response__get_packed_size,
            grpc__health__v1__health_check_response__pack)
    }
}
