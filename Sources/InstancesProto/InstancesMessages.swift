internal import CInstancesProto

/// Asks about the instance behind one provider ID.
public struct ProviderIDRequest: ProtoMessage, Equatable {
    public var providerID: String

    public init(providerID: String) {
        self.providerID = providerID
    }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        guard !stringFieldHoldsNUL(bytes, fields: [1]) else {
            throw ProtoDecodingError(messageName: "ProviderIDRequest")
        }
        self = try unpack(
            bytes, as: "ProviderIDRequest",
            cloudprovider__instances__v1__provider_idrequest__unpack,
            cloudprovider__instances__v1__provider_idrequest__free_unpacked
        ) { message in
            ProviderIDRequest(providerID: string(message.provider_id))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = CStringArena()
        var message = Cloudprovider__Instances__V1__ProviderIDRequest()
        cloudprovider__instances__v1__provider_idrequest__init(&message)
        message.provider_id = arena.copy(providerID)
        return pack(
            &message,
            cloudprovider__instances__v1__provider_idrequest__get_packed_size,
            cloudprovider__instances__v1__provider_idrequest__pack)
    }
}

/// Asks about the instance behind one Kubernetes node.
public struct NodeRequest: ProtoMessage, Equatable {
    public var nodeName: String
    public var providerID: String
    /// When the Node object was created, in seconds since the Unix epoch; 0 when unknown.
    public var creationUnixSeconds: Int64

    public init(nodeName: String = "", providerID: String = "", creationUnixSeconds: Int64 = 0) {
        self.nodeName = nodeName
        self.providerID = providerID
        self.creationUnixSeconds = creationUnixSeconds
    }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        guard !stringFieldHoldsNUL(bytes, fields: [1, 2]) else {
            throw ProtoDecodingError(messageName: "NodeRequest")
        }
        self = try unpack(
            bytes, as: "NodeRequest",
            cloudprovider__instances__v1__node_request__unpack,
            cloudprovider__instances__v1__node_request__free_unpacked
        ) { message in
            NodeRequest(
                nodeName: string(message.node_name),
                providerID: string(message.provider_id),
                creationUnixSeconds: message.creation_unix_seconds)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = CStringArena()
        var message = Cloudprovider__Instances__V1__NodeRequest()
        cloudprovider__instances__v1__node_request__init(&message)
        message.node_name = arena.copy(nodeName)
        message.provider_id = arena.copy(providerID)
        message.creation_unix_seconds = creationUnixSeconds
        return pack(
            &message,
            cloudprovider__instances__v1__node_request__get_packed_size,
            cloudprovider__instances__v1__node_request__pack)
    }
}

/// Whether the instance exists.
public struct ExistsResponse: ProtoMessage, Equatable {
    public var exists: Bool

    public init(exists: Bool) {
        self.exists = exists
    }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        self = try unpack(
            bytes, as: "ExistsResponse",
            cloudprovider__instances__v1__exists_response__unpack,
            cloudprovider__instances__v1__exists_response__free_unpacked
        ) { message in
            ExistsResponse(exists: message.exists != 0)
        }
    }

    public func serializedBytes() -> [UInt8] {
        // Field 1, varint: the whole encoding of a proto3 bool, empty when false.
        exists ? [0x08, 0x01] : []
    }
}

/// Whether the instance is shut down.
public struct ShutdownResponse: ProtoMessage, Equatable {
    public var shutdown: Bool

    public init(shutdown: Bool) {
        self.shutdown = shutdown
    }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        self = try unpack(
            bytes, as: "ShutdownResponse",
            cloudprovider__instances__v1__shutdown_response__unpack,
            cloudprovider__instances__v1__shutdown_response__free_unpacked
        ) { message in
            ShutdownResponse(shutdown: message.shutdown != 0)
        }
    }

    public func serializedBytes() -> [UInt8] {
        shutdown ? [0x08, 0x01] : []
    }
}

/// One address of a node, typed as Kubernetes types them.
public struct NodeAddress: Sendable, Equatable {
    /// `Hostname`, `InternalIP` or `ExternalIP`.
    public var type: String
    public var address: String

    public init(type: String, address: String) {
        self.type = type
        self.address = address
    }
}

/// What Kubernetes' InstancesV2 metadata call returns.
public struct InstanceMetadataResponse: ProtoMessage, Equatable {
    public var providerID: String
    public var instanceType: String
    public var nodeAddresses: [NodeAddress]
    public var zone: String
    public var region: String

    public init(
        providerID: String, instanceType: String, nodeAddresses: [NodeAddress], zone: String,
        region: String
    ) {
        self.providerID = providerID
        self.instanceType = instanceType
        self.nodeAddresses = nodeAddresses
        self.zone = zone
        self.region = region
    }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        self = try unpack(
            bytes, as: "InstanceMetadataResponse",
            cloudprovider__instances__v1__instance_metadata_response__unpack,
            cloudprovider__instances__v1__instance_metadata_response__free_unpacked
        ) { message in
            let addresses = (0..<message.n_node_addresses).compactMap { index in
                message.node_addresses[index].map { address in
                    NodeAddress(
                        type: string(address.pointee.type),
                        address: string(address.pointee.address))
                }
            }
            return InstanceMetadataResponse(
                providerID: string(message.provider_id),
                instanceType: string(message.instance_type),
                nodeAddresses: addresses,
                zone: string(message.zone),
                region: string(message.region))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = CStringArena()
        var message = Cloudprovider__Instances__V1__InstanceMetadataResponse()
        cloudprovider__instances__v1__instance_metadata_response__init(&message)
        message.provider_id = arena.copy(providerID)
        message.instance_type = arena.copy(instanceType)
        message.zone = arena.copy(zone)
        message.region = arena.copy(region)
        let addresses = nodeAddresses.map { address in
            var entry = Cloudprovider__Instances__V1__NodeAddress()
            cloudprovider__instances__v1__node_address__init(&entry)
            entry.type = arena.copy(address.type)
            entry.address = arena.copy(address.address)
            return Optional(arena.allocate(entry))
        }
        message.n_node_addresses = addresses.count
        message.node_addresses = arena.array(addresses)
        return pack(
            &message,
            cloudprovider__instances__v1__instance_metadata_response__get_packed_size,
            cloudprovider__instances__v1__instance_metadata_response__pack)
    }
}

/// Asks about many provider IDs in one call.
public struct InstancesExistRequest: ProtoMessage, Equatable {
    public var providerIDs: [String]

    public init(providerIDs: [String]) {
        self.providerIDs = providerIDs
    }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        guard !stringFieldHoldsNUL(bytes, fields: [1]) else {
            throw ProtoDecodingError(messageName: "InstancesExistRequest")
        }
        self = try unpack(
            bytes, as: "InstancesExistRequest",
            cloudprovider__instances__v1__instances_exist_request__unpack,
            cloudprovider__instances__v1__instances_exist_request__free_unpacked
        ) { message in
            InstancesExistRequest(
                providerIDs: (0..<message.n_provider_ids).map { string(message.provider_ids[$0]) })
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = CStringArena()
        var message = Cloudprovider__Instances__V1__InstancesExistRequest()
        cloudprovider__instances__v1__instances_exist_request__init(&message)
        let ids = providerIDs.map { Optional(arena.copy($0)) }
        message.n_provider_ids = ids.count
        message.provider_ids = arena.array(ids)
        return pack(
            &message,
            cloudprovider__instances__v1__instances_exist_request__get_packed_size,
            cloudprovider__instances__v1__instances_exist_request__pack)
    }
}

/// The existence verdict for one provider ID of a batch, with its own status code.
public struct InstanceVerdict: Sendable, Equatable {
    public var providerID: String
    public var exists: Bool
    /// A gRPC status code for this one ID; 0 when the verdict is good.
    public var code: Int32
    public var message: String

    public init(providerID: String, exists: Bool, code: Int32 = 0, message: String = "") {
        self.providerID = providerID
        self.exists = exists
        self.code = code
        self.message = message
    }
}

/// The verdicts of a batch, in the order the IDs were asked.
public struct InstancesExistResponse: ProtoMessage, Equatable {
    public var verdicts: [InstanceVerdict]

    public init(verdicts: [InstanceVerdict]) {
        self.verdicts = verdicts
    }

    public init(serializedBytes bytes: [UInt8]) throws(ProtoDecodingError) {
        self = try unpack(
            bytes, as: "InstancesExistResponse",
            cloudprovider__instances__v1__instances_exist_response__unpack,
            cloudprovider__instances__v1__instances_exist_response__free_unpacked
        ) { message in
            let verdicts = (0..<message.n_verdicts).compactMap { index in
                message.verdicts[index].map { verdict in
                    InstanceVerdict(
                        providerID: string(verdict.pointee.provider_id),
                        exists: verdict.pointee.exists != 0,
                        code: verdict.pointee.code,
                        message: string(verdict.pointee.message))
                }
            }
            return InstancesExistResponse(verdicts: verdicts)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = CStringArena()
        var message = Cloudprovider__Instances__V1__InstancesExistResponse()
        cloudprovider__instances__v1__instances_exist_response__init(&message)
        let verdicts = verdicts.map { verdict in
            var entry = Cloudprovider__Instances__V1__InstanceVerdict()
            cloudprovider__instances__v1__instance_verdict__init(&entry)
            entry.provider_id = arena.copy(verdict.providerID)
            entry.exists = verdict.exists ? 1 : 0
            entry.code = verdict.code
            entry.message = arena.copy(verdict.message)
            return Optional(arena.allocate(entry))
        }
        message.n_verdicts = verdicts.count
        message.verdicts = arena.array(verdicts)
        return pack(
            &message,
            cloudprovider__instances__v1__instances_exist_response__get_packed_size,
            cloudprovider__instances__v1__instances_exist_response__pack)
    }
}
