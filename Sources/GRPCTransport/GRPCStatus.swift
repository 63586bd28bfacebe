/// The outcome of one gRPC call: a status code, a human-readable message and an optional retry hint.
///
/// The transport sends it as the `grpc-status`, `grpc-message` (percent-encoded) and
/// `grpc-retry-pushback-ms` trailers, and the client decodes the same trailers back into it.
public struct GRPCStatus: Error, Sendable, Equatable, CustomStringConvertible {
    /// A gRPC status code; unknown values received from a peer are kept as they are.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The numeric code carried in `grpc-status`.
        public let rawValue: Int32

        /// Wraps any numeric code, also ones this library does not name.
        public init(rawValue: Int32) {
            self.rawValue = rawValue
        }

        /// 0: the call succeeded.
        public static let ok = Code(rawValue: 0)
        /// 1: the caller cancelled the call.
        public static let cancelled = Code(rawValue: 1)
        /// 2: an error that fits no other code.
        public static let unknown = Code(rawValue: 2)
        /// 3: the request was malformed for the application.
        public static let invalidArgument = Code(rawValue: 3)
        /// 4: the deadline passed before the call completed.
        public static let deadlineExceeded = Code(rawValue: 4)
        /// 5: the requested entity does not exist.
        public static let notFound = Code(rawValue: 5)
        /// 6: the entity to create already exists.
        public static let alreadyExists = Code(rawValue: 6)
        /// 7: the caller may not do this.
        public static let permissionDenied = Code(rawValue: 7)
        /// 8: a limit (message size, quota) was hit.
        public static let resourceExhausted = Code(rawValue: 8)
        /// 9: the system is not in a state that allows the call.
        public static let failedPrecondition = Code(rawValue: 9)
        /// 10: the call was aborted, usually by a concurrency conflict.
        public static let aborted = Code(rawValue: 10)
        /// 11: a value was outside the valid range.
        public static let outOfRange = Code(rawValue: 11)
        /// 12: the method is not implemented by this server.
        public static let unimplemented = Code(rawValue: 12)
        /// 13: an invariant broke, or the bytes on the wire did not make sense.
        public static let internalError = Code(rawValue: 13)
        /// 14: the service is unavailable for now; retrying may help.
        public static let unavailable = Code(rawValue: 14)
        /// 15: data was lost or corrupted.
        public static let dataLoss = Code(rawValue: 15)
        /// 16: the caller did not authenticate.
        public static let unauthenticated = Code(rawValue: 16)

        static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
            "UNAUTHENTICATED",
        ]

        /// The name used by the gRPC documents, such as `DEADLINE_EXCEEDED`.
        public var description: String {
            if rawValue >= 0 && Int(rawValue) < Code.names.count {
                return Code.names[Int(rawValue)]
            }
            return "CODE_\(rawValue)"
        }
    }

    /// The status code.
    public var code: Code
    /// A message for humans; empty for OK.
    public var message: String
    /// Sent as the `grpc-retry-pushback-ms` trailer when set.
    public var retryPushbackMilliseconds: Int?

    /// Creates a status; the message is percent-encoded only when it is sent.
    public init(code: Code, message: String = "", retryPushbackMilliseconds: Int? = nil) {
        self.code = code
        self.message = message
        self.retryPushbackMilliseconds = retryPushbackMilliseconds
    }

    /// The status of a call that succeeded.
    public static let ok = GRPCStatus(code: .ok)

    /// `CODE: message`, for logs and test failures.
    public var description: String {
        message.isEmpty ? code.description : "\(code): \(message)"
    }
}

extension GRPCStatus {
    /// The status a client reports for a response without `grpc-status`, from its HTTP status,
    /// as the gRPC HTTP-to-status mapping prescribes.
    static func fromHTTPStatus(_ status: Int) -> GRPCStatus {
        let code: Code
        switch status {
        case 400: code = .internalError
        case 401: code = .unauthenticated
        case 403: code = .permissionDenied
        case 404: code = .unimplemented
        case 429, 502, 503, 504: code = .unavailable
        default: code = .unknown
        }
        return GRPCStatus(code: code, message: "HTTP status \(status)")
    }
}

/// The `grpc-message` encoding: bytes outside 0x20...0x7E and `%` itself become `%XX`.
enum PercentEncoding {
    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// How many UTF-8 bytes of a status message go on the wire. Clients refuse header blocks
    /// past a few KiB (grpcio) and nghttp2 will not send one past 64 KiB, so a longer message
    /// would cost the caller its whole answer; 1 KiB, at most 3 KiB encoded, fits everywhere.
    static let maxMessageBytes = 1024

    /// `text` cut to `maxBytes` UTF-8 bytes on a character-safe boundary, with "…" appended
    /// when anything was cut.
    static func truncated(_ text: String, maxBytes: Int = maxMessageBytes) -> String {
        let utf8 = text.utf8
        guard utf8.count > maxBytes else { return text }
        var end = utf8.index(utf8.startIndex, offsetBy: maxBytes)
        // Back off continuation bytes (10xxxxxx) so no scalar is split.
        while end > utf8.startIndex && utf8[end] & 0xC0 == 0x80 {
            end = utf8.index(before: end)
        }
        return String(decoding: utf8[utf8.startIndex..<end], as: UTF8.self) + "…"
    }

    /// The `grpc-message` value for `text`: truncated, then percent-encoded.
    static func encodeMessage(_ text: String) -> [UInt8] {
        encode(truncated(text))
    }

    static func encode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        return out
    }

    /// Decodes `%XX` sequences; a malformed sequence is kept literally, as gRPC clients do.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%"), index + 2 < bytes.count,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(byte)
                index += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { decode($0) }
    }
}
