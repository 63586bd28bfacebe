/// Why an ARM body could not be read.
public struct ARMDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong and at which byte, without quoting the body (it may hold anything).
    public let message: String

    init(_ message: String, at offset: Int) {
        self.message = "\(message) at byte \(offset)"
    }

    init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// A forward-only JSON reader over bytes that visits only the members a caller asks for and
/// skips every other value without building it. ARM bodies are mostly fields this program never
/// reads, so skipping is where the time goes; nothing is allocated for a skipped value.
struct JSONScanner: ~Copyable {
    /// A member name as it sits in the body: a byte range, escaped or not.
    struct Key {
        let start: Int
        let end: Int
        let escaped: Bool
    }

    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0
    private var depth = 0
    /// Nesting deeper than this is refused, so a hostile body cannot exhaust the stack.
    private static let maximumDepth = 200

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    func error(_ message: String) -> ARMDecodingError {
        ARMDecodingError(message, at: offset)
    }

    private mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x0A, 0x0D, 0x09: offset += 1
            default: return
            }
        }
    }

    private mutating func peek() throws(ARMDecodingError) -> UInt8 {
        skipWhitespace()
        guard offset < bytes.count else { throw error("unexpected end of body") }
        return bytes[offset]
    }

    /// Checks that nothing but whitespace follows the top-level value.
    mutating func finish() throws(ARMDecodingError) {
        skipWhitespace()
        guard offset == bytes.count else { throw error("trailing bytes after the JSON value") }
    }

    /// Enters an object when one comes next; otherwise skips the value and returns false.
    mutating func beginObject() throws(ARMDecodingError) -> Bool {
        if try peek() == UInt8(ascii: "{") {
            try enter()
            offset += 1
            first = true
            return true
        }
        try skipValue()
        return false
    }

    /// Enters an array when one comes next; otherwise skips the value and returns false.
    mutating func beginArray() throws(ARMDecodingError) -> Bool {
        if try peek() == UInt8(ascii: "[") {
            try enter()
            offset += 1
            first = true
            return true
        }
        try skipValue()
        return false
    }

    private var first = true

    private mutating func enter() throws(ARMDecodingError) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw error("JSON nested too deeply") }
    }

    /// The next member name of the object being read, or nil (and the object left) at its end.
    /// The caller must consume the member's value before asking again.
    mutating func nextKey() throws(ARMDecodingError) -> Key? {
        var byte = try peek()
        if byte == UInt8(ascii: "}") {
            offset += 1
            depth -= 1
            first = false
            return nil
        }
        if !first {
            guard byte == UInt8(ascii: ",") else { throw error("expected ',' or '}'") }
            offset += 1
            byte = try peek()
        }
        first = false
        guard byte == UInt8(ascii: "\"") else { throw error("expected a member name") }
        let (start, end, escaped) = try scanString()
        guard try peek() == UInt8(ascii: ":") else { throw error("expected ':'") }
        offset += 1
        return Key(start: start, end: end, escaped: escaped)
    }

    /// Whether another element follows in the array being read; false (and the array left) at
    /// its end.
    mutating func nextElement() throws(ARMDecodingError) -> Bool {
        let byte = try peek()
        if byte == UInt8(ascii: "]") {
            offset += 1
            depth -= 1
            first = false
            return false
        }
        if !first {
            guard byte == UInt8(ascii: ",") else { throw error("expected ',' or ']'") }
            offset += 1
        }
        first = false
        return true
    }

    /// Whether a member name is exactly `literal` (ASCII, compared case-sensitively as JSON is).
    func key(_ key: Key, is literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        if key.escaped {
            return decodeString(key.start, key.end) == literal.description
        }
        guard key.end - key.start == count else { return false }
        let base = literal.utf8Start
        for index in 0..<count where bytes[key.start + index] != base[index] {
            return false
        }
        return true
    }

    /// Reads a string value; any other kind of value is skipped and gives nil.
    mutating func stringOrNil() throws(ARMDecodingError) -> String? {
        guard try peek() == UInt8(ascii: "\"") else {
            try skipValue()
            return nil
        }
        let (start, end, escaped) = try scanString()
        if !escaped {
            return String(
                decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }
        return decodeString(start, end)
    }

    /// Reads an integer value that fits an `Int`; any other value is skipped and gives nil.
    mutating func intOrNil() throws(ARMDecodingError) -> Int? {
        let startByte = try peek()
        guard startByte == UInt8(ascii: "-") || (startByte >= 0x30 && startByte <= 0x39) else {
            try skipValue()
            return nil
        }
        let start = offset
        try skipNumber()
        var value = 0
        var negative = false
        for index in start..<offset {
            let byte = bytes[index]
            if byte == UInt8(ascii: "-") && index == start {
                negative = true
                continue
            }
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            let (times, overflowA) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflowB) = times.addingReportingOverflow(Int(byte - 0x30))
            if overflowA || overflowB { return nil }
            value = sum
        }
        return negative ? -value : value
    }

    /// Reads `true` or `false`; any other value is skipped and gives nil.
    mutating func boolOrNil() throws(ARMDecodingError) -> Bool? {
        let byte = try peek()
        if byte == UInt8(ascii: "t") || byte == UInt8(ascii: "f") {
            try skipValue()
            return byte == UInt8(ascii: "t")
        }
        try skipValue()
        return nil
    }

    /// Skips one value of any kind, checking its syntax but building nothing.
    mutating func skipValue() throws(ARMDecodingError) {
        switch try peek() {
        case UInt8(ascii: "\""):
            _ = try scanString()
        case UInt8(ascii: "{"):
            try enter()
            offset += 1
            first = true
            while try nextKey() != nil {
                try skipValue()
            }
        case UInt8(ascii: "["):
            try enter()
            offset += 1
            first = true
            while try nextElement() {
                try skipValue()
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), 0x30...0x39: try skipNumber()
        default: throw error("unexpected character")
        }
        first = false
    }

    private mutating func literal(_ word: StaticString) throws(ARMDecodingError) {
        let count = word.utf8CodeUnitCount
        guard offset + count <= bytes.count else { throw error("unexpected end of body") }
        for index in 0..<count where bytes[offset + index] != word.utf8Start[index] {
            throw error("unknown literal")
        }
        offset += count
    }

    private mutating func skipNumber() throws(ARMDecodingError) {
        let start = offset
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x30...0x39, UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."),
                UInt8(ascii: "e"), UInt8(ascii: "E"):
                offset += 1
            default:
                guard offset > start else { throw error("bad number") }
                return
            }
        }
    }

    /// Moves past a string whose opening quote is at `offset`; returns the content range.
    private mutating func scanString() throws(ARMDecodingError) -> (Int, Int, Bool) {
        offset += 1
        let start = offset
        var escaped = false
        while offset < bytes.count {
            // Eight bytes at a time while none is a quote, a backslash or a control character:
            // most of an ARM body is long strings this program skips.
            if offset + 8 <= bytes.count {
                let word = UInt64(
                    littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                if !Self.mayEndString(word) {
                    offset += 8
                    continue
                }
            }
            let byte = bytes[offset]
            if byte == UInt8(ascii: "\"") {
                offset += 1
                return (start, offset - 1, escaped)
            }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                offset += 2
                continue
            }
            if byte < 0x20 { throw error("control character in a string") }
            offset += 1
        }
        throw error("unterminated string")
    }

    /// Whether any byte of `word` is `"`, `\\` or below 0x20 (may report a false positive only
    /// when a byte is 0x80 or above, which the byte loop then handles).
    @inline(__always)
    private static func mayEndString(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let zeroQuote = (quote &- ones) & ~quote
        let zeroBackslash = (backslash &- ones) & ~backslash
        let control = word &- (ones &* 0x20)
        return ((zeroQuote | zeroBackslash | control) & highs) != 0
    }

    /// Decodes an escaped string's content; bad escapes become U+FFFD rather than failing,
    /// since no value this program reads depends on them.
    private func decodeString(_ start: Int, _ end: Int) -> String {
        var scalars = String.UnicodeScalarView()
        var plain: [UInt8] = []
        var index = start
        func flush() {
            if !plain.isEmpty {
                scalars.append(contentsOf: String(decoding: plain, as: UTF8.self).unicodeScalars)
                plain.removeAll(keepingCapacity: true)
            }
        }
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= end else { return nil }
            var value: UInt32 = 0
            for position in at..<(at + 4) {
                guard let digit = Self.hexValue(bytes[position]) else { return nil }
                value = value << 4 | digit
            }
            return value
        }
        while index < end {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\"), index + 1 < end else {
                plain.append(byte)
                index += 1
                continue
            }
            flush()
            let escape = bytes[index + 1]
            index += 2
            switch escape {
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "u"):
                guard var code = hex4(index) else {
                    scalars.append("\u{FFFD}")
                    continue
                }
                index += 4
                if code >= 0xD800 && code < 0xDC00, index + 6 <= end,
                    bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u"),
                    let low = hex4(index + 2), low >= 0xDC00 && low < 0xE000
                {
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    index += 6
                }
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: scalars.append(Unicode.Scalar(escape))
            }
        }
        flush()
        return String(scalars)
    }

    private static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case 0x30...0x39: UInt32(byte - 0x30)
        case 0x41...0x46: UInt32(byte - 0x41 + 10)
        case 0x61...0x66: UInt32(byte - 0x61 + 10)
        default: nil
        }
    }
}
