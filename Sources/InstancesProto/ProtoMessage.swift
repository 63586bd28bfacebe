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

/// Whether a top-level string field among `fields` holds a NUL byte.
///
/// protobuf-c hands strings out NUL-terminated, so such a value would silently arrive cut short
/// at its first NUL: `.../virtualMachines/3\0junk` would be read as `.../virtualMachines/3`.
/// The request messages are flat, so their top-level fields are all there is to look at. Bytes
/// that are not a valid encoding answer false here and are refused by protobuf-c.
func stringFieldHoldsNUL(_ bytes: [UInt8], fields: Set<UInt64>) -> Bool {
    var offset = 0
    func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count, shift < 64 {
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }
    while offset < bytes.count {
        guard let key = varint() else { return false }
        switch key & 7 {
        case 0:
            guard varint() != nil else { return false }
        case 1:
            offset += 8
        case 2:
            guard let length = varint(), length <= UInt64(bytes.count - offset) else {
                return false
            }
            let end = offset + Int(length)
            if fields.contains(key >> 3), bytes[offset..<end].contains(0) { return true }
            offset = end
        case 5:
            offset += 4
        default:
            return false
        }
    }
    return false
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
