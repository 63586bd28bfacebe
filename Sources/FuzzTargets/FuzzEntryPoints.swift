import AzureARM
import AzureModel
import GRPCTransport
import InstancesProto

/// The code paths that read bytes nobody vouches for, each behind one entry point taking raw
/// bytes. The libFuzzer executables and the regression replay in `FuzzRegressionTests` call the
/// same functions, so a crash input committed under `fuzz/` fails `swift test` the way it made
/// the fuzzer fail.
///
/// Every entry point checks what must hold for any input besides "no crash", and reports a
/// broken promise with `FuzzFailure`; the fuzz executables turn a failure into a crash.
public enum FuzzEntryPoints {
    /// A promise the code under test broke for some input.
    public struct FuzzFailure: Error, CustomStringConvertible {
        /// What went wrong, in words.
        public let description: String

        init(_ description: String) {
            self.description = description
        }
    }

    /// The longest error message a client may be handed for bad input: a hostile provider ID
    /// must not be echoed back whole. The parser quotes at most two values of 200 characters,
    /// each control character escaped to at most 6 bytes and each other one at most 4 bytes.
    static let maximumErrorMessageBytes = 4096

    /// Parses the bytes as a provider ID and checks that an accepted ID has one stable key:
    /// reading the canonical spelling gives back the same ID, and the key is lower-cased.
    /// A refused ID must come with a bounded message free of raw control characters.
    public static func providerID(_ bytes: UnsafeRawBufferPointer) throws {
        let text = String(decoding: bytes, as: UTF8.self)
        let parsed: ProviderID
        do {
            parsed = try ProviderID(parsing: text)
        } catch {
            try checkMessage(error.message, what: "provider ID error")
            return
        }
        switch parsed {
        case .empty:
            guard text.isEmpty else { throw FuzzFailure("non-empty text read as .empty") }
        case .unmanaged(let kept):
            guard kept == text else { throw FuzzFailure("an unmanaged ID was altered") }
            guard !text.lowercased().hasPrefix("azure:///") else {
                throw FuzzFailure("an azure:/// ID was taken for an unmanaged one")
            }
        case .scaleSetInstance, .virtualMachine:
            let key = parsed.canonical
            guard key == key.lowercased() else {
                throw FuzzFailure("canonical key is not lower-cased: \(key.debugDescription)")
            }
            let again: ProviderID
            do {
                again = try ProviderID(parsing: key)
            } catch {
                throw FuzzFailure("canonical key does not parse: \(error.message)")
            }
            guard again == parsed, again.canonical == key else {
                throw FuzzFailure("canonical key reads to another ID: \(key.debugDescription)")
            }
        }
    }

    /// Hands the bytes to every ARM body decoder: a VM listing page (scale set and standalone),
    /// one VM, a scale set page, a NIC page, one NIC and an error body. None may crash; what they
    /// return must stay within what the body could hold.
    public static func armDecoder(_ bytes: UnsafeRawBufferPointer) throws {
        let body = [UInt8](bytes)
        let group = ResourceGroupRef(subscriptionID: "sub-1", name: "rg-1")
        for scaleSetInstances in [true, false] {
            if let page = try? ARMDecoder.decodeVirtualMachinePage(
                body, scaleSetInstances: scaleSetInstances)
            {
                try checkBounded(page.vms.count, body, what: "VMs")
                for vm in page.vms {
                    try checkVirtualMachine(vm, body)
                }
            }
            if let vm = try? ARMDecoder.decodeVirtualMachine(
                body, scaleSetInstance: scaleSetInstances)
            {
                try checkVirtualMachine(vm, body)
            }
        }
        if let page = try? ARMDecoder.decodeScaleSetPage(body, resourceGroup: group) {
            try checkBounded(page.scaleSets.count, body, what: "scale sets")
            for summary in page.scaleSets where summary.ref.resourceGroup != group {
                throw FuzzFailure("a scale set summary left its resource group: \(summary.ref)")
            }
        }
        if let page = try? ARMDecoder.decodeNetworkInterfacePage(body) {
            try checkBounded(page.addresses.count, body, what: "addresses")
        }
        if let addresses = try? ARMDecoder.decodeNetworkInterface(body) {
            try checkBounded(addresses.count, body, what: "addresses")
        }
        if let error = ARMDecoder.decodeError(body) {
            // Counted in scalars: an invalid byte reads as one U+FFFD, three bytes in UTF-8.
            let scalars = error.code.unicodeScalars.count + error.message.unicodeScalars.count
            try checkBounded(scalars, body, what: "error text scalars")
        }
    }

    /// Feeds the bytes through the server's request path below HTTP/2: the first byte picks how
    /// the rest is cut into DATA chunks and which receive limit applies; the message reader
    /// reassembles gRPC messages across the chunks, and each message is decoded as every request
    /// type the services read. A decoded message must survive a round trip unchanged, the reader
    /// must never hand out more bytes than it was given, and nothing may follow a framing error.
    public static func grpcMessages(_ bytes: UnsafeRawBufferPointer) throws {
        guard let control = bytes.first else { return }
        let stream = UnsafeRawBufferPointer(rebasing: bytes[1...])
        let chunkSize = Int(control & 0x1F) + 1
        let limits = [4 * 1024 * 1024, 64, 5, 0]
        let limit = limits[Int(control >> 5) & 0x3]
        var reader = MessageReader()
        var delivered: [[UInt8]] = []
        var framingError: FramingError?
        var offset = 0
        while offset < stream.count {
            let end = min(stream.count, offset + chunkSize)
            let chunk = UnsafeRawBufferPointer(rebasing: stream[offset..<end])
            let error = reader.consume(chunk, limit: limit) { delivered.append($0) }
            if let error {
                guard framingError == nil else { throw FuzzFailure("two framing errors reported") }
                framingError = error
                _ = error.status
            }
            offset = end
        }
        let payload = delivered.reduce(0) { $0 + $1.count + 5 }
        guard payload <= stream.count else {
            throw FuzzFailure("the reader delivered \(payload) bytes from \(stream.count)")
        }
        for message in delivered {
            guard message.count <= limit else {
                throw FuzzFailure("a \(message.count)-byte message passed a \(limit)-byte limit")
            }
            try decodeEveryRequest(message)
        }
        if framingError == nil, !reader.isMidMessage {
            let reframed = delivered.flatMap { MessagePrefix.framed($0) }
            guard reframed.elementsEqual(stream) else {
                throw FuzzFailure("messages read do not frame back to the bytes given")
            }
        }
        _ = GRPCTimeout.parse(String(decoding: stream.prefix(12), as: UTF8.self))
    }

    /// Decodes one message as every request (and, for the client side, every response) type.
    static func decodeEveryRequest(_ message: [UInt8]) throws {
        try roundTrip(ProviderIDRequest.self, message)
        try roundTrip(NodeRequest.self, message)
        try roundTrip(InstancesExistRequest.self, message)
        try roundTrip(StatsRequest.self, message)
        try roundTrip(InvalidateRequest.self, message)
        try roundTrip(HealthCheckRequest.self, message)
        try roundTrip(ExistsResponse.self, message)
        try roundTrip(ShutdownResponse.self, message)
        try roundTrip(InstanceMetadataResponse.self, message)
        try roundTrip(InstancesExistResponse.self, message)
        try roundTrip(StatsResponse.self, message)
        try roundTrip(HealthCheckResponse.self, message)
        if let request = try? ProviderIDRequest(serializedBytes: message) {
            try providerIDText(request.providerID)
        }
    }

    private static func providerIDText(_ text: String) throws {
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBytes { (raw) throws in try providerID(raw) }
    }

    private static func roundTrip<Message: ProtoMessage & Equatable>(
        _ type: Message.Type, _ bytes: [UInt8]
    ) throws {
        guard let first = try? Message(serializedBytes: bytes) else { return }
        let encoded = first.serializedBytes()
        guard let second = try? Message(serializedBytes: encoded) else {
            throw FuzzFailure("\(Message.self) re-encoded into bytes it cannot read")
        }
        guard second.serializedBytes() == encoded else {
            throw FuzzFailure("\(Message.self) does not survive a second round trip")
        }
    }

    private static func checkMessage(_ message: String, what: String) throws {
        guard !message.isEmpty else { throw FuzzFailure("\(what) is empty") }
        guard message.utf8.count <= maximumErrorMessageBytes else {
            throw FuzzFailure("\(what) is \(message.utf8.count) bytes long")
        }
        for scalar in message.unicodeScalars where scalar.value < 0x20 || scalar.value == 0x7F {
            throw FuzzFailure("\(what) holds control character \(scalar.value)")
        }
    }

    private static func checkBounded(_ count: Int, _ body: [UInt8], what: String)
        throws
    {
        guard count <= body.count else {
            throw FuzzFailure("\(count) \(what) read from a \(body.count)-byte body")
        }
    }

    private static func checkVirtualMachine(_ vm: VirtualMachine, _ body: [UInt8])
        throws
    {
        try checkBounded(vm.zones.count, body, what: "zones")
        if let instanceID = vm.instanceID {
            try checkBounded(instanceID.unicodeScalars.count, body, what: "instance ID scalars")
        }
        if vm.powerState != nil, !body.contains(UInt8(ascii: "/")) {
            throw FuzzFailure("a power state was read from a body with no status code")
        }
    }
}
