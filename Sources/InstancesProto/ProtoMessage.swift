internal import CInstancesProto
internal import CProtobufC

#if canImport(Glibc)
import Glibc
#endif

/// A message of the service contract that can be read from and written to protobuf bytes.
public protocol ProtoMessage: Sendable {
    /// Reads the message from its protobuf encoding.
    /// - Throws: `ProtoDecodingError` when the bytes are not a valid encoding of this message.
    init(serializedBytes: [UInt8]) throws(ProtoDecodingError)

    /// The protobuf encoding of the message.
    func serializedBytes() -> [UInt8]
}

/// The bytes given were not a valid protobuf encoding of the expected message.
public struct ProtoDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message type that was expected.
    public let messageName: String

    public var description: String { "request bytes are not a valid \(messageName)" }
}

/// Hands `bytes` to a protobuf-c `unpack` function, reads the result into Swift values and frees
/// the C message before returning.
func unpack<Message, Value>(
    _ bytes: [UInt8],
    as messageName: String,
    _ unpackFunction: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?)
        -> UnsafeMutablePointer<Message>?,
    _ freeFunction: (UnsafeMutablePointer<Message>?, UnsafeMutablePointer<ProtobufCAllocator>?)
        -> Void,
    _ read: (borrowing Message) -> Value
) throws(ProtoDecodingError) -> Value {
    let message = bytes.withUnsafeBufferPointer { buffer in
        unpackFunction(nil, buffer.count, buffer.baseAddress)
    }
    guard let message else { throw ProtoDecodingError(messageName: messageName) }
    defer { freeFunction(message, nil) }
    return read(message.pointee)
}

/// Packs a protobuf-c message into a new byte array of exactly its encoded size.
func pack<Message>(
    _ message: inout Message,
    _ sizeFunction: (UnsafePointer<Message>?) -> Int,
    _ packFunction: (UnsafePointer<Message>?, UnsafeMutablePointer<UInt8>?) -> Int
) -> [UInt8] {
    withUnsafePointer(to: &message) { pointer in
        let size = sizeFunction(pointer)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = packFunction(pointer, buffer.baseAddress)
        }
    }
}

/// Reads a C string that protobuf-c produced; it never hands out NULL for a string field, but a
/// NULL is read as empty rather than trusted.
func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    guard let pointer else { return "" }
    return String(cString: pointer)
}

/// Owns the C copies of the strings, arrays and nested messages a message being packed points
/// to, and frees them all at once.
final class CStringArena {
    private var strings: [UnsafeMutablePointer<CChar>] = []
    private var blocks: [UnsafeMutableRawPointer] = []

    /// A NUL-terminated copy of `text` that lives as long as the arena.
    func copy(_ text: String) -> UnsafeMutablePointer<CChar> {
        let pointer = strdup(text)!
        strings.append(pointer)
        return pointer
    }

    /// A C array of the given values that lives as long as the arena.
    func array<Element>(_ elements: [Element]) -> UnsafeMutablePointer<Element> {
        let buffer = UnsafeMutablePointer<Element>.allocate(capacity: max(elements.count, 1))
        buffer.initialize(from: elements, count: elements.count)
        blocks.append(UnsafeMutableRawPointer(buffer))
        return buffer
    }

    /// A copy of a C struct that lives as long as the arena.
    func allocate<Value>(_ value: Value) -> UnsafeMutablePointer<Value> {
        let pointer = UnsafeMutablePointer<Value>.allocate(capacity: 1)
        pointer.initialize(to: value)
        blocks.append(UnsafeMutableRawPointer(pointer))
        return pointer
    }

    deinit {
        for pointer in strings {
            free(pointer)
        }
        for block in blocks {
            block.deallocate()
        }
    }
}
