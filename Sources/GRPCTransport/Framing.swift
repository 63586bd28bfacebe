/// Why a stream of length-prefixed messages could not be read.
package enum FramingError: Error, Equatable {
    /// The length prefix promised more than the receive limit allows.
    case tooLarge(length: Int, limit: Int)
    /// The compressed flag was set; this transport negotiates no compression.
    case compressed
    /// The flag byte held a value other than 0 or 1.
    case badFlag(UInt8)

    package var status: GRPCStatus {
        switch self {
        case .tooLarge(let length, let limit):
            return GRPCStatus(
                code: .resourceExhausted,
                message: "received message larger than max (\(length) vs. \(limit))")
        case .compressed:
            return GRPCStatus(
                code: .internalError,
                message: "compressed message received without a supported grpc-encoding")
        case .badFlag(let flag):
            return GRPCStatus(code: .internalError, message: "invalid message flag \(flag)")
        }
    }
}

/// Reassembles gRPC messages (1 flag byte, 4-byte big-endian length, payload) from DATA chunks
/// whose boundaries have nothing to do with message boundaries.
///
/// The size limit is checked against the length prefix, so an oversized message is refused
/// before any of its payload is buffered.
package struct MessageReader {
    private var prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
    private var prefixCount = 0
    private var expected = 0
    private var buffer: [UInt8] = []
    private var inPayload = false
    /// Set once an error was reported; later input is ignored.
    package private(set) var failed = false

    /// A reader waiting for the first byte of a message.
    package init() {}

    /// True when some bytes of a message arrived but not all of them.
    package var isMidMessage: Bool { prefixCount > 0 || inPayload }

    /// Feeds one chunk, calling `onMessage` for every message it completes.
    /// - Returns: the first framing error met; the reader ignores everything after it.
    package mutating func consume(
        _ chunk: UnsafeRawBufferPointer, limit: Int, onMessage: ([UInt8]) -> Void
    ) -> FramingError? {
        if failed { return nil }
        var offset = 0
        let count = chunk.count
        while offset < count {
            if !inPayload {
                // Fast path: a whole prefix inside this chunk.
                if prefixCount == 0 && count - offset >= 5 {
                    let flag = chunk[offset]
                    let length =
                        Int(chunk[offset + 1]) << 24 | Int(chunk[offset + 2]) << 16
                        | Int(chunk[offset + 3]) << 8 | Int(chunk[offset + 4])
                    offset += 5
                    if let error = begin(flag: flag, length: length, limit: limit) {
                        failed = true
                        return error
                    }
                } else {
                    withUnsafeMutableBytes(of: &prefix) { $0[prefixCount] = chunk[offset] }
                    prefixCount += 1
                    offset += 1
                    if prefixCount < 5 { continue }
                    prefixCount = 0
                    let length =
                        Int(prefix.1) << 24 | Int(prefix.2) << 16 | Int(prefix.3) << 8
                        | Int(prefix.4)
                    if let error = begin(flag: prefix.0, length: length, limit: limit) {
                        failed = true
                        return error
                    }
                }
                if expected == 0 {
                    inPayload = false
                    onMessage([])
                }
                continue
            }
            let available = count - offset
            let needed = expected - buffer.count
            if buffer.isEmpty && available >= needed {
                // The whole payload is here: one allocation, one copy.
                let slice = UnsafeRawBufferPointer(rebasing: chunk[offset..<(offset + needed)])
                offset += needed
                inPayload = false
                onMessage(Array(slice.bindMemory(to: UInt8.self)))
                continue
            }
            let take = min(available, needed)
            if buffer.capacity < expected { buffer.reserveCapacity(expected) }
            buffer.append(
                contentsOf: UnsafeRawBufferPointer(rebasing: chunk[offset..<(offset + take)])
                    .bindMemory(to: UInt8.self))
            offset += take
            if buffer.count == expected {
                inPayload = false
                let message = buffer
                buffer = []
                onMessage(message)
            }
        }
        return nil
    }

    private mutating func begin(flag: UInt8, length: Int, limit: Int) -> FramingError? {
        if flag == 1 { return .compressed }
        if flag != 0 { return .badFlag(flag) }
        if length > limit { return .tooLarge(length: length, limit: limit) }
        expected = length
        inPayload = length > 0
        return nil
    }
}

/// Writes the 5-byte gRPC message prefix.
package enum MessagePrefix {
    static func write(length: Int, compressed: Bool = false, to out: UnsafeMutablePointer<UInt8>) {
        out[0] = compressed ? 1 : 0
        out[1] = UInt8(truncatingIfNeeded: length >> 24)
        out[2] = UInt8(truncatingIfNeeded: length >> 16)
        out[3] = UInt8(truncatingIfNeeded: length >> 8)
        out[4] = UInt8(truncatingIfNeeded: length)
    }

    /// The prefix followed by the message, as one array.
    package static func framed(_ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 5)
        out.withUnsafeMutableBufferPointer { write(length: message.count, to: $0.baseAddress!) }
        out.append(contentsOf: message)
        return out
    }
}

/// The `grpc-timeout` header: 1 to 8 ASCII digits, then one of `H M S m u n`.
package enum GRPCTimeout {
    /// Parses the header value; nil when it is malformed.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Duration? {
        let count = bytes.count
        guard count >= 2 && count <= 9 else { return nil }
        var value: Int64 = 0
        for index in 0..<(count - 1) {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        switch bytes[count - 1] {
        case UInt8(ascii: "H"): return .seconds(value * 3600)
        case UInt8(ascii: "M"): return .seconds(value * 60)
        case UInt8(ascii: "S"): return .seconds(value)
        case UInt8(ascii: "m"): return .milliseconds(value)
        case UInt8(ascii: "u"): return .microseconds(value)
        case UInt8(ascii: "n"): return .nanoseconds(value)
        default: return nil
        }
    }

    /// Parses the header value from text; nil when it is malformed.
    package static func parse(_ text: String) -> Duration? {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { parse($0) }
    }

    /// Encodes a timeout in the finest unit that fits in 8 digits, rounding up so a client
    /// never asks for less time than it has.
    static func encode(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return "1n" }
        let nanos = Double(seconds) * 1e9 + Double(attoseconds) / 1e9
        let units: [(Double, Character)] = [
            (1, "n"), (1e3, "u"), (1e6, "m"), (1e9, "S"), (60e9, "M"), (3600e9, "H"),
        ]
        for (scale, unit) in units {
            let value = (nanos / scale).rounded(.up)
            if value < 100_000_000 { return "\(Int64(value))\(unit)" }
        }
        return "99999999H"
    }
}
