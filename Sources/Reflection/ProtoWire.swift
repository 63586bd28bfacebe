/// Why protobuf bytes could not be read.
struct ProtoWireError: Error, Equatable {
    let message: String
}

/// Reads the fields of one protobuf message: just enough of the wire format for reflection's
/// messages and descriptors (varints, length-delimited fields; fixed-width ones are skipped).
struct ProtoReader {
    /// A field's number and what it carries.
    enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case other
    }

    private let bytes: ArraySlice<UInt8>
    private var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    /// The next field, nil at the end of the message.
    /// - Throws: `ProtoWireError` for a truncated field, a bad wire type or a field number 0.
    mutating func next() throws(ProtoWireError) -> (number: UInt64, value: Value)? {
        guard index < bytes.endIndex else { return nil }
        let key = try varint()
        let number = key >> 3
        guard number > 0 else { throw ProtoWireError(message: "field number 0") }
        switch key & 7 {
        case 0:
            return (number, .varint(try varint()))
        case 1:
            try skip(8)
            return (number, .other)
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.endIndex - index) else {
                throw ProtoWireError(message: "length-delimited field runs past the message")
            }
            let start = index
            index += Int(length)
            return (number, .bytes(bytes[start..<index]))
        case 5:
            try skip(4)
            return (number, .other)
        default:
            throw ProtoWireError(message: "unsupported wire type \(key & 7)")
        }
    }

    private mutating func skip(_ count: Int) throws(ProtoWireError) {
        guard bytes.endIndex - index >= count else {
            throw ProtoWireError(message: "fixed-width field runs past the message")
        }
        index += count
    }

    private mutating func varint() throws(ProtoWireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.endIndex && shift < 64 {
            let byte = bytes[index]
            index += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw ProtoWireError(message: "truncated or overlong varint")
    }
}

/// Writes protobuf fields in order into a byte array.
struct ProtoWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ number: UInt64, _ value: UInt64) {
        appendVarint(number << 3)
        appendVarint(value)
    }

    mutating func bytes<Bytes: Collection<UInt8>>(_ number: UInt64, _ value: Bytes) {
        appendVarint(number << 3 | 2)
        appendVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func string(_ number: UInt64, _ value: String) {
        bytes(number, Array(value.utf8))
    }

    private mutating func appendVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }
}

extension ArraySlice<UInt8> {
    /// The bytes as UTF-8 text (invalid sequences replaced).
    var text: String { String(decoding: self, as: UTF8.self) }
}
