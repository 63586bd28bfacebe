#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Writes one line per event, as text or JSON, filtered by Kubernetes-style `-v` verbosity.
///
/// Level 0 is always written (start, stop, warnings, errors); 1 adds configuration and state
/// changes; 2 adds a line per RPC; 4 and above add internals. Callers pass a constant message and
/// key/value fields; values must never hold a secret.
public struct Logger: Sendable {
    /// How each line is written.
    public enum Format: String, Sendable {
        case text, json
    }

    /// How serious an event is.
    public enum Severity: String, Sendable {
        case info, warning, error
    }

    /// The highest verbosity level that is written.
    public let verbosity: Int
    public let format: Format
    private let sink: @Sendable (String) -> Void

    /// A logger writing to the given sink, one call per line without the trailing newline.
    public init(verbosity: Int, format: Format, sink: @escaping @Sendable (String) -> Void) {
        self.verbosity = verbosity
        self.format = format
        self.sink = sink
    }

    /// A logger writing to standard error.
    public static func standardError(verbosity: Int, format: Format) -> Logger {
        Logger(verbosity: verbosity, format: format) { line in
            let text = line + "\n"
            text.utf8CString.withUnsafeBufferPointer { buffer in
                // One write per line keeps lines whole when several threads log at once.
                _ = Glibc.write(2, buffer.baseAddress, buffer.count - 1)
            }
        }
    }

    /// A logger that writes nothing.
    public static let disabled = Logger(verbosity: -1, format: .text) { _ in }

    /// Whether lines of this verbosity level are written; check it before building costly fields.
    public func enabled(_ level: Int) -> Bool {
        level <= verbosity
    }

    /// Writes an informational line when `level` is enabled.
    public func info(
        _ message: String, level: Int = 0, _ fields: KeyValuePairs<String, Any> = [:]
    ) {
        write(.info, level: level, message, fields)
    }

    /// Writes a warning; warnings are written at every verbosity.
    public func warning(_ message: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        write(.warning, level: 0, message, fields)
    }

    /// Writes an error; errors are written at every verbosity.
    public func error(_ message: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        write(.error, level: 0, message, fields)
    }

    private func write(
        _ severity: Severity, level: Int, _ message: String, _ fields: KeyValuePairs<String, Any>
    ) {
        guard enabled(level) else { return }
        let time = Logger.timestamp()
        switch format {
        case .text:
            var line = "\(time) \(severity.rawValue.uppercased()) \(message)"
            for (key, value) in fields {
                line += " \(key)=\(Logger.quotedIfNeeded(Logger.bounded(value)))"
            }
            sink(line)
        case .json:
            var line = "{\"ts\":\"\(time)\",\"level\":\"\(severity.rawValue)\",\"v\":\(level)"
            line += ",\"msg\":\(Logger.jsonString(message))"
            for (key, value) in fields {
                line += ",\(Logger.jsonString(key)):\(Logger.jsonValue(value))"
            }
            sink(line + "}")
        }
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let milliseconds = now.tv_nsec / 1_000_000
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1,
            parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, milliseconds)
    }

    /// The longest field value written whole; a client-supplied value can be megabytes long.
    static let maximumValueBytes = 1024

    /// The value as text, cut after `maximumValueBytes` bytes and followed by its full length.
    static func bounded(_ value: Any) -> String {
        let text = String(describing: value)
        guard text.utf8.count > maximumValueBytes else { return text }
        // A character split at the cut decodes as U+FFFD rather than as broken UTF-8.
        let head = String(decoding: text.utf8.prefix(maximumValueBytes), as: UTF8.self)
        return head + "…(\(text.utf8.count) bytes)"
    }

    private static func quotedIfNeeded(_ value: String) -> String {
        let plain = !value.isEmpty
            && value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "\"" }
        return plain ? value : jsonString(value)
    }

    private static func jsonValue(_ value: Any) -> String {
        switch value {
        case let number as Int: String(number)
        case let number as UInt64: String(number)
        case let number as Int64: String(number)
        case let number as Int32: String(number)
        case let number as UInt32: String(number)
        case let number as Double: number.isFinite ? String(number) : jsonString(String(number))
        case let flag as Bool: flag ? "true" : "false"
        default: jsonString(bounded(value))
        }
    }

    /// `text` as a JSON string literal, with every control character escaped.
    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
