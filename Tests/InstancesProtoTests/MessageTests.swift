import InstancesProto
import Testing

@Suite("protobuf messages of the contract")
struct MessageTests {
    @Test("a provider ID request has the standard protobuf encoding")
    func providerIDEncoding() throws {
        let bytes = ProviderIDRequest(providerID: "abc").serializedBytes()

        #expect(bytes == [0x0A, 0x03, 0x61, 0x62, 0x63])
        #expect(try ProviderIDRequest(serializedBytes: bytes).providerID == "abc")
    }

    @Test("booleans encode as field 1 varint and decode back", arguments: [true, false])
    func booleans(value: Bool) throws {
        let exists = ExistsResponse(exists: value).serializedBytes()
        let shutdown = ShutdownResponse(shutdown: value).serializedBytes()

        #expect(exists == (value ? [0x08, 0x01] : []))
        #expect(try ExistsResponse(serializedBytes: exists).exists == value)
        #expect(try ShutdownResponse(serializedBytes: shutdown).shutdown == value)
    }

    @Test("every message survives a round trip")
    func roundTrips() throws {
        let node = NodeRequest(
            nodeName: "aks-000001", providerID: "azure:///x", creationUnixSeconds: 7)
        let metadata = InstanceMetadataResponse(
            providerID: "azure:///x", instanceType: "Standard_D2s_v3",
            nodeAddresses: [
                NodeAddress(type: "Hostname", address: "aks-000001"),
                NodeAddress(type: "InternalIP", address: "10.0.0.4"),
            ],
            zone: "westus-1", region: "westus")
        let batch = InstancesExistRequest(providerIDs: ["a", "", "c"])
        let verdicts = InstancesExistResponse(verdicts: [
            InstanceVerdict(providerID: "a", exists: true),
            InstanceVerdict(providerID: "", exists: false, code: 9, message: "empty"),
        ])
        var stats = StatsResponse()
        stats.hits = 5
        stats.entries = 2
        stats.armCalls = [ARMCallCount(operation: "list_vmss_vms", outcome: "ok", count: 3)]
        let invalidate = InvalidateRequest(subscriptionID: "s", resourceGroup: "rg", scaleSet: "v")

        #expect(try NodeRequest(serializedBytes: node.serializedBytes()) == node)
        #expect(
            try InstanceMetadataResponse(serializedBytes: metadata.serializedBytes()) == metadata)
        #expect(try InstancesExistRequest(serializedBytes: batch.serializedBytes()) == batch)
        #expect(try InstancesExistResponse(serializedBytes: verdicts.serializedBytes()) == verdicts)
        #expect(try StatsResponse(serializedBytes: stats.serializedBytes()) == stats)
        #expect(try InvalidateRequest(serializedBytes: invalidate.serializedBytes()) == invalidate)
        let removed = InvalidateResponse(removed: 4)
        #expect(try InvalidateResponse(serializedBytes: removed.serializedBytes()) == removed)
        let health = HealthCheckResponse(status: .notServing)
        #expect(try HealthCheckResponse(serializedBytes: health.serializedBytes()) == health)
        let check = HealthCheckRequest(service: "x")
        #expect(try HealthCheckRequest(serializedBytes: check.serializedBytes()) == check)
    }

    @Test("an empty body is the default message")
    func emptyBody() throws {
        #expect(try ProviderIDRequest(serializedBytes: []).providerID == "")
        #expect(try NodeRequest(serializedBytes: []) == NodeRequest())
    }

    @Test("unknown fields are skipped")
    func unknownFields() throws {
        // Field 9 (varint 5) before field 1.
        let bytes: [UInt8] = [0x48, 0x05, 0x0A, 0x01, 0x7A]

        #expect(try ProviderIDRequest(serializedBytes: bytes).providerID == "z")
    }

    @Test(
        "bytes that are not protobuf are refused",
        arguments: [
            [0x0A, 0x05, 0x61] as [UInt8],  // length runs past the end
            [0x0A],  // tag without a value
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],  // endless varint
            [0x0B, 0x01],  // start group, never ended
        ]
    )
    func garbage(bytes: [UInt8]) {
        #expect(throws: ProtoDecodingError.self) { try ProviderIDRequest(serializedBytes: bytes) }
        #expect(throws: ProtoDecodingError.self) { try NodeRequest(serializedBytes: bytes) }
        #expect(throws: ProtoDecodingError.self) {
            try InstancesExistRequest(serializedBytes: bytes)
        }
    }

    @Test("a field of the wrong wire type is refused")
    func wrongWireType() {
        // Field 1 as a varint, where a string is declared.
        #expect(throws: ProtoDecodingError.self) {
            try ProviderIDRequest(serializedBytes: [0x08, 0x01])
        }
    }

    @Test("a string holding a NUL byte is refused rather than read cut short")
    func nulInStrings() {
        let id = Array("azure:///x/3".utf8) + [0] + Array("junk".utf8)
        let request: [UInt8] = [0x0A, UInt8(id.count)] + id

        #expect(throws: ProtoDecodingError.self) { try ProviderIDRequest(serializedBytes: request) }
        #expect(throws: ProtoDecodingError.self) { try NodeRequest(serializedBytes: request) }
        #expect(throws: ProtoDecodingError.self) {
            try InstancesExistRequest(serializedBytes: [0x0A, 0x01, 0x61] + request)
        }
        #expect(throws: ProtoDecodingError.self) {
            try NodeRequest(serializedBytes: [0x12, 0x02, 0x61, 0x00])
        }
    }

    @Test("zero bytes outside strings are ordinary protobuf")
    func zeroOutsideStrings() throws {
        // node_name "a", then creation_unix_seconds written out as 0.
        let request = try NodeRequest(serializedBytes: [0x0A, 0x01, 0x61, 0x18, 0x00])

        #expect(request == NodeRequest(nodeName: "a"))
    }
}
