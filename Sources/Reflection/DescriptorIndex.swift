/// The files of a `google.protobuf.FileDescriptorSet`, indexed by name and by every symbol they
/// define: packages' messages (nested ones too), enums, services and methods.
public struct DescriptorIndex: Sendable {
    /// One file: its serialized `FileDescriptorProto` and the files it imports.
    struct File: Sendable {
        let name: String
        let serialized: [UInt8]
        let dependencies: [String]
    }

    private let files: [String: File]
    private let fileBySymbol: [String: String]
    private let messageTypes: Set<String>
    /// Every service's full name, sorted.
    public let services: [String]

    /// Reads a serialized `FileDescriptorSet`.
    /// - Throws: an error describing the first malformed field.
    public init(fileDescriptorSet bytes: [UInt8]) throws {
        var files: [String: File] = [:]
        var fileBySymbol: [String: String] = [:]
        var messageTypes = Set<String>()
        var services: [String] = []
        var set = ProtoReader(bytes[...])
        while let (number, value) = try set.next() {
            guard number == 1, case .bytes(let fileBytes) = value else { continue }
            var name = ""
            var package = ""
            var dependencies: [String] = []
            var messages: [ArraySlice<UInt8>] = []
            var enums: [ArraySlice<UInt8>] = []
            var serviceBodies: [ArraySlice<UInt8>] = []
            var file = ProtoReader(fileBytes)
            while let (number, value) = try file.next() {
                guard case .bytes(let field) = value else { continue }
                switch number {
                case 1: name = field.text
                case 2: package = field.text
                case 3: dependencies.append(field.text)
                case 4: messages.append(field)
                case 5: enums.append(field)
                case 6: serviceBodies.append(field)
                default: break
                }
            }
            let prefix = package.isEmpty ? "" : package + "."
            var symbols: [String] = package.isEmpty ? [] : [package]
            for message in messages {
                try Self.messageSymbols(
                    message, prefix: prefix, into: &symbols, types: &messageTypes)
            }
            for body in enums {
                symbols.append(prefix + (try Self.name(of: body)))
            }
            for body in serviceBodies {
                let service = prefix + (try Self.name(of: body))
                services.append(service)
                symbols.append(service)
                var reader = ProtoReader(body)
                while let (number, value) = try reader.next() {
                    if number == 2, case .bytes(let method) = value {
                        symbols.append(service + "." + (try Self.name(of: method)))
                    }
                }
            }
            for symbol in symbols where fileBySymbol[symbol] == nil {
                fileBySymbol[symbol] = name
            }
            files[name] = File(name: name, serialized: Array(fileBytes), dependencies: dependencies)
        }
        self.files = files
        self.fileBySymbol = fileBySymbol
        self.messageTypes = messageTypes
        self.services = services.sorted()
    }

    /// The file named `name` followed by everything it imports, directly or not, each once;
    /// nil when no such file is known.
    func fileWithDependencies(named name: String) -> [File]? {
        guard files[name] != nil else { return nil }
        var ordered: [File] = []
        var seen = Set<String>()
        var pending = [name]
        while let next = pending.popLast() {
            guard seen.insert(next).inserted, let file = files[next] else { continue }
            ordered.append(file)
            pending.append(contentsOf: file.dependencies.reversed())
        }
        return ordered
    }

    /// The name of the file defining `symbol`, nil when none does.
    func fileName(definingSymbol symbol: String) -> String? {
        fileBySymbol[symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol]
    }

    /// Whether `name` is a message type of some file.
    func isMessageType(_ name: String) -> Bool {
        messageTypes.contains(name.hasPrefix(".") ? String(name.dropFirst()) : name)
    }

    private static func name(of body: ArraySlice<UInt8>) throws -> String {
        var reader = ProtoReader(body)
        while let (number, value) = try reader.next() {
            if number == 1, case .bytes(let name) = value { return name.text }
        }
        return ""
    }

    private static func messageSymbols(
        _ body: ArraySlice<UInt8>, prefix: String, into symbols: inout [String],
        types: inout Set<String>
    ) throws {
        let full = prefix + (try name(of: body))
        symbols.append(full)
        types.insert(full)
        var reader = ProtoReader(body)
        while let (number, value) = try reader.next() {
            guard case .bytes(let nested) = value else { continue }
            if number == 3 {
                try messageSymbols(nested, prefix: full + ".", into: &symbols, types: &types)
            } else if number == 4 {
                symbols.append(full + "." + (try name(of: nested)))
            }
        }
    }
}
