import GRPCTransport
import Synchronization
import Testing
import VMSSService

@testable import Reflection

/// One reflection stream: send requests, read the decoded responses.
final class ReflectionStream: Sendable {
    private final class Inbox: Sendable {
        let responses = Mutex<[[UInt8]]>([])
        let status = Mutex<GRPCStatus?>(nil)
    }

    private let inbox = Inbox()
    private let stream: ClientStream

    init(_ harness: ServiceHarness, version: String = "v1") {
        let inbox = self.inbox
        stream = harness.client.bidirectionalStream(
            path: "/grpc.reflection.\(version).ServerReflection/ServerReflectionInfo",
            onMessage: { message in inbox.responses.withLock { $0.append(message) } },
            onEnd: { ended in inbox.status.withLock { $0 = ended } })
    }

    /// Sends a request with one field of the `message_request` oneof, and waits for its answer,
    /// without half-closing.
    func ask(_ field: UInt64, _ value: String) async throws -> Response {
        var request = ProtoWriter()
        request.string(1, "localhost")
        request.string(field, value)
        return try await askRaw(request.bytes)
    }

    func sendRaw(_ bytes: [UInt8]) {
        stream.send(bytes)
    }

    func askRaw(_ bytes: [UInt8]) async throws -> Response {
        let before = inbox.responses.withLock { $0.count }
        stream.send(bytes)
        let arrived = await eventually { inbox.responses.withLock { $0.count } > before }
        try #require(arrived, "no answer before the half-close")
        return try Response(inbox.responses.withLock { $0[before] })
    }

    func close() async -> GRPCStatus? {
        stream.closeSend()
        _ = await eventually { inbox.status.withLock { $0 } != nil }
        return inbox.status.withLock { $0 }
    }

    var endStatus: GRPCStatus? { inbox.status.withLock { $0 } }

    /// The parts of a `ServerReflectionResponse` the tests look at.
    struct Response {
        var services: [String] = []
        var fileNames: [String] = []
        var errorCode: UInt64?
        var errorMessage = ""
        var originalRequest: [UInt8] = []

        init(_ bytes: [UInt8]) throws {
            var reader = ProtoReader(bytes[...])
            while let (number, value) = try reader.next() {
                guard case .bytes(let body) = value else { continue }
                switch number {
                case 2: originalRequest = Array(body)
                case 4:
                    fileNames = try Self.strings(in: body, field: 1).map { try Self.fileName($0) }
                case 6:
                    services = try Self.strings(in: body, field: 1).map {
                        try Self.strings(in: $0[...], field: 1).first.map {
                            String(decoding: $0, as: UTF8.self)
                        } ?? ""
                    }
                case 7:
                    var error = ProtoReader(body)
                    while let (number, value) = try error.next() {
                        if number == 1, case .varint(let code) = value { errorCode = code }
                        if number == 2, case .bytes(let text) = value { errorMessage = text.text }
                    }
                default: break
                }
            }
        }

        private static func strings(in body: ArraySlice<UInt8>, field: UInt64) throws -> [[UInt8]] {
            var reader = ProtoReader(body)
            var values: [[UInt8]] = []
            while let (number, value) = try reader.next() {
                if number == field, case .bytes(let bytes) = value { values.append(Array(bytes)) }
            }
            return values
        }

        private static func fileName(_ descriptor: [UInt8]) throws -> String {
            try strings(in: descriptor[...], field: 1).first.map {
                String(decoding: $0, as: UTF8.self)
            } ?? ""
        }
    }
}

@Suite("server reflection over a real socket")
struct ReflectionTests {
    @Test("list_services names every service, answered before the client half-closes")
    func listServices() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        let stream = ReflectionStream(harness)

        let answer = try await stream.ask(7, "")

        #expect(answer.services.contains("cloudprovider.instances.v1.Instances"))
        #expect(answer.services.contains("grpc.health.v1.Health"))
        #expect(answer.services.contains("grpc.reflection.v1alpha.ServerReflection"))
        #expect(stream.endStatus == nil)
        #expect(await stream.close()?.code == .ok)
    }

    @Test("file_containing_symbol resolves services, methods, messages and nested enums")
    func symbols() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        let stream = ReflectionStream(harness, version: "v1alpha")
        let instances = "cloudprovider/instances/v1/instances.proto"

        for symbol in [
            "cloudprovider.instances.v1.Instances",
            "cloudprovider.instances.v1.Instances.InstanceExistsByProviderID",
            "cloudprovider.instances.v1.ProviderIDRequest",
        ] {
            let answer = try await stream.ask(4, symbol)
            #expect(answer.fileNames.first == instances, "\(symbol)")
            #expect(answer.errorCode == nil)
        }
        let nested = try await stream.ask(4, "grpc.health.v1.HealthCheckResponse.ServingStatus")

        #expect(nested.fileNames == ["grpc/health/v1/health.proto"])
        _ = await stream.close()
    }

    @Test("file_by_filename returns the file; an unknown name or symbol is NOT_FOUND in-band")
    func filesAndErrors() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        let stream = ReflectionStream(harness)

        let file = try await stream.ask(3, "grpc/reflection/v1/reflection.proto")
        let missingFile = try await stream.ask(3, "nope.proto")
        let missingSymbol = try await stream.ask(4, "no.such.Thing")
        let afterErrors = try await stream.ask(7, "")

        #expect(file.fileNames == ["grpc/reflection/v1/reflection.proto"])
        #expect(missingFile.errorCode == 5)
        #expect(missingFile.errorMessage.contains("nope.proto"))
        #expect(missingSymbol.errorCode == 5)
        #expect(!afterErrors.services.isEmpty)
        #expect(!missingSymbol.originalRequest.isEmpty)
        #expect(await stream.close()?.code == .ok)
    }

    @Test("request bytes that do not parse end the stream INVALID_ARGUMENT")
    func malformed() async throws {
        let harness = try ServiceHarness()
        defer { harness.stop() }
        let stream = ReflectionStream(harness)

        stream.sendRaw([0x3A, 50, 1])
        let ended = await eventually { stream.endStatus != nil }

        #expect(ended)
        #expect(stream.endStatus?.code == .invalidArgument)
    }
}

@Suite("the descriptor index")
struct DescriptorIndexTests {
    @Test("a file's dependencies follow it, each once")
    func dependencies() throws {
        var dependency = ProtoWriter()
        dependency.string(1, "b.proto")
        var root = ProtoWriter()
        root.string(1, "a.proto")
        root.string(3, "b.proto")
        var set = ProtoWriter()
        set.bytes(1, root.bytes)
        set.bytes(1, dependency.bytes)

        let index = try DescriptorIndex(fileDescriptorSet: set.bytes)

        #expect(
            index.fileWithDependencies(named: "a.proto")?.map(\.name) == ["a.proto", "b.proto"])
        #expect(index.fileWithDependencies(named: "c.proto") == nil)
    }

    @Test("a truncated descriptor set is refused, not trusted")
    func truncated() {
        #expect(throws: ProtoWireError.self) {
            try DescriptorIndex(fileDescriptorSet: [0x0A, 0x10, 0x0A])
        }
    }
}
