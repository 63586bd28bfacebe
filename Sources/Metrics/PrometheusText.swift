/// Builds a page in the Prometheus text exposition format, version 0.0.4.
///
/// Each metric family gets its `# HELP` and `# TYPE` lines exactly once, however many calls add
/// samples to it, and its samples stay together in the order they were added, as the format
/// requires. Label values and help texts are escaped, so any string is safe to pass.
/// Metric and label names are chosen by the program, not by its users: an invalid one is a bug
/// in the caller and traps.
public struct PrometheusText: Sendable {
    private struct Family: Sendable {
        let type: String
        let help: String
        var samples: String
    }

    private var order: [String] = []
    private var families: [String: Family] = [:]

    /// Creates an empty page.
    public init() {}

    /// Adds samples of a counter family (values only ever grow; the name usually ends in `_total`).
    public mutating func counter(
        _ name: String, help: String, _ samples: [(labels: [(String, String)], value: Double)]
    ) {
        var lines = ""
        for sample in samples {
            appendSample(to: &lines, name: name, labels: sample.labels, value: sample.value)
        }
        append(name, type: "counter", help: help, lines: lines)
    }

    /// Adds samples of a gauge family (values that go up and down).
    public mutating func gauge(
        _ name: String, help: String, _ samples: [(labels: [(String, String)], value: Double)]
    ) {
        var lines = ""
        for sample in samples {
            appendSample(to: &lines, name: name, labels: sample.labels, value: sample.value)
        }
        append(name, type: "gauge", help: help, lines: lines)
    }

    /// Adds samples of a histogram family.
    ///
    /// - Parameters:
    ///   - upperBounds: the finite bucket bounds in increasing order, shared by every sample;
    ///     the `+Inf` bucket is added by the writer.
    ///   - samples: per label set, `bucketCounts` holds the observations that fell in each
    ///     bucket alone (not cumulative): one count per bound, then one for observations above
    ///     the largest bound. The page shows them cumulative in `_bucket{le=...}`, with
    ///     `le="+Inf"` and `_count` equal to the total, and `sum` as `_sum`.
    public mutating func histogram(
        _ name: String, help: String, upperBounds: [Double],
        _ samples: [(labels: [(String, String)], bucketCounts: [UInt64], sum: Double)]
    ) {
        precondition(
            zip(upperBounds, upperBounds.dropFirst()).allSatisfy { $0 < $1 }
                && upperBounds.allSatisfy(\.isFinite),
            "histogram bounds must be finite and strictly increasing")
        let boundLabels = upperBounds.map(Self.format)
        var lines = ""
        for sample in samples {
            precondition(
                sample.bucketCounts.count == upperBounds.count + 1,
                "a histogram sample needs one count per bound plus one above the largest")
            precondition(!sample.labels.contains { $0.0 == "le" }, "label `le` is reserved")
            var cumulative: UInt64 = 0
            for (bound, count) in zip(boundLabels, sample.bucketCounts) {
                cumulative &+= count
                appendSample(
                    to: &lines, name: name + "_bucket", labels: sample.labels + [("le", bound)],
                    value: Double(cumulative))
            }
            cumulative &+= sample.bucketCounts[upperBounds.count]
            appendSample(
                to: &lines, name: name + "_bucket", labels: sample.labels + [("le", "+Inf")],
                value: Double(cumulative))
            appendSample(to: &lines, name: name + "_sum", labels: sample.labels, value: sample.sum)
            appendSample(
                to: &lines, name: name + "_count", labels: sample.labels,
                value: Double(cumulative))
        }
        append(name, type: "histogram", help: help, lines: lines)
    }

    /// The page: every family with its HELP and TYPE lines, then its samples, each line ending
    /// in a newline.
    public var text: String {
        var page = ""
        for name in order {
            guard let family = families[name] else { continue }
            page += "# HELP \(name) \(Self.escapeHelp(family.help))\n"
            page += "# TYPE \(name) \(family.type)\n"
            page += family.samples
        }
        return page
    }

    private mutating func append(_ name: String, type: String, help: String, lines: String) {
        precondition(Self.isValidMetricName(name), "invalid metric name \(name)")
        if let existing = families[name] {
            precondition(existing.type == type, "metric \(name) is already a \(existing.type)")
            families[name]?.samples += lines
        } else {
            order.append(name)
            families[name] = Family(type: type, help: help, samples: lines)
        }
    }

    private func appendSample(
        to lines: inout String, name: String, labels: [(String, String)], value: Double
    ) {
        lines += name
        if !labels.isEmpty {
            lines += "{"
            for (position, (label, labelValue)) in labels.enumerated() {
                precondition(Self.isValidLabelName(label), "invalid label name \(label)")
                if position > 0 { lines += "," }
                lines += label
                lines += "=\""
                lines += Self.escapeLabelValue(labelValue)
                lines += "\""
            }
            lines += "}"
        }
        lines += " "
        lines += Self.format(value)
        lines += "\n"
    }

    /// Formats a sample value or bucket bound the way Prometheus parsers read it: integers
    /// without a fraction, `+Inf`, `-Inf`, `NaN`, and the shortest exact form otherwise.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    /// Escapes a label value: backslash, double quote and newline, as the format defines.
    static func escapeLabelValue(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x5C || $0 == 0x22 || $0 == 0x0A }) else {
            return value
        }
        var escaped = ""
        escaped.reserveCapacity(value.utf8.count + 8)
        for character in value.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }

    /// Escapes a help text: backslash and newline (a quote needs no escape there).
    static func escapeHelp(_ help: String) -> String {
        var escaped = ""
        for character in help.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }

    static func isValidMetricName(_ name: String) -> Bool {
        isValidName(name, allowColon: true)
    }

    static func isValidLabelName(_ name: String) -> Bool {
        isValidName(name, allowColon: false) && !name.hasPrefix("__")
    }

    private static func isValidName(_ name: String, allowColon: Bool) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            (0x61...0x7A).contains(byte) || (0x41...0x5A).contains(byte)
                || (0x30...0x39).contains(byte) || byte == 0x5F || (allowColon && byte == 0x3A)
        }
    }
}
