import Foundation

/// The command line of `vmssd`: every flag, its default, and the checks that stop a bad start.
struct Options {
    var socketPath = ""
    var socketMode: UInt32 = 0o600
    var cloudConfigPath = ""
    var armEndpoint: String?
    var aadEndpoint: String?
    var imdsEndpoint: String?
    var subscriptionID: String?
    var resourceGroup: String?
    var listingTTL: Double?
    var virtualMachineTTL: Double?
    var negativeCacheTTL: Double = 120
    var refreshOnMissInterval: Double = 10
    var maxStale: Double?
    var cacheMaxScaleSets = 10_000
    var newNodeGrace: Double = 0
    var armTimeout: Double = 10
    var rateLimitQPS: Double?
    var rateLimitBucket: Int?
    var drainTimeout: Double = 25
    var allowedUIDs: Set<UInt32>?
    var eventLoops = 2
    var metricsAddress: String?
    var logFormat = "text"
    var verbosity = 0
    var showHelp = false

    /// One flag: its names, the placeholder of its value (nil for a switch), its default as
    /// shown in `--help`, what it does, and how its value is stored.
    struct Flag: Sendable {
        let name: String
        let value: String?
        let defaultText: String
        let help: String
        let apply: @Sendable (inout Options, String) throws(OptionsError) -> Void
    }

    static let flags: [Flag] = [
        Flag(name: "socket", value: "PATH", defaultText: "required",
             help: "Unix socket to serve on; @name for an abstract socket") { options, value in
            options.socketPath = value
        },
        Flag(name: "socket-mode", value: "OCTAL", defaultText: "0600",
             help: "permissions of the socket file") { options, value throws(OptionsError) in
            guard let mode = UInt32(value, radix: 8), mode <= 0o777 else {
                throw OptionsError("--socket-mode: \"\(value)\" is not an octal mode like 0600")
            }
            options.socketMode = mode
        },
        Flag(name: "cloud-config", value: "FILE", defaultText: "required",
             help: "azure.json, as the Azure cloud provider reads it") { options, value in
            options.cloudConfigPath = value
        },
        Flag(name: "arm-endpoint", value: "URL", defaultText: "the cloud's",
             help: "Azure Resource Manager endpoint; http only for a loopback host") { o, v in
            o.armEndpoint = v
        },
        Flag(name: "aad-endpoint", value: "URL", defaultText: "the cloud's",
             help: "Microsoft Entra ID (AAD) token endpoint base") { options, value in
            options.aadEndpoint = value
        },
        Flag(name: "imds-endpoint", value: "URL", defaultText: "$VMSSD_IMDS_ENDPOINT or IMDS",
             help: "managed-identity token endpoint base") { options, value in
            options.imdsEndpoint = value
        },
        Flag(name: "subscription-id", value: "ID", defaultText: "azure.json subscriptionId",
             help: "subscription of the cluster's VMs") { options, value in
            options.subscriptionID = value
        },
        Flag(name: "resource-group", value: "NAME", defaultText: "azure.json resourceGroup",
             help: "resource group searched when a node has no provider ID") { options, value in
            options.resourceGroup = value
        },
        Flag(name: "listing-ttl", value: "SECONDS",
             defaultText: "vmssVirtualMachinesCacheTTLInSeconds or 600",
             help: "how long a scale set listing is used") { options, value throws(OptionsError) in
            options.listingTTL = try positiveSeconds(value, flag: "listing-ttl")
        },
        Flag(name: "vm-ttl", value: "SECONDS", defaultText: "vmCacheTTLInSeconds or 60",
             help: "how long a standalone VM is used") { options, value throws(OptionsError) in
            options.virtualMachineTTL = try positiveSeconds(value, flag: "vm-ttl")
        },
        Flag(name: "negative-cache-ttl", value: "SECONDS", defaultText: "120",
             help: "how long a deleted scale set or VM is remembered as gone") {
            o, v throws(OptionsError) in
            o.negativeCacheTTL = try positiveSeconds(v, flag: "negative-cache-ttl")
        },
        Flag(name: "refresh-on-miss-interval", value: "SECONDS", defaultText: "10",
             help: "a listing older than the question by more is refetched before a false") {
            options, value throws(OptionsError) in
            options.refreshOnMissInterval = try seconds(value, flag: "refresh-on-miss-interval")
        },
        Flag(name: "max-stale", value: "SECONDS", defaultText: "2 x listing TTL",
             help: "how long past expiry a listing may answer true while ARM fails") {
            options, value throws(OptionsError) in
            options.maxStale = try seconds(value, flag: "max-stale")
        },
        Flag(name: "cache-max-scale-sets", value: "N", defaultText: "10000",
             help: "scale sets kept in the cache, least recently used out first") {
            options, value throws(OptionsError) in
            options.cacheMaxScaleSets = try count(value, flag: "cache-max-scale-sets", in: 1...)
        },
        Flag(name: "new-node-grace", value: "SECONDS", defaultText: "0",
             help: "a node younger than this is never declared gone") { o, v throws(OptionsError) in
            o.newNodeGrace = try seconds(v, flag: "new-node-grace")
        },
        Flag(name: "arm-timeout", value: "SECONDS", defaultText: "10",
             help: "timeout of one ARM request") { options, value throws(OptionsError) in
            options.armTimeout = try positiveSeconds(value, flag: "arm-timeout")
        },
        Flag(name: "rate-limit-qps", value: "QPS", defaultText: "cloudProviderRateLimitQPS",
             help: "ARM requests per second per subscription") { o, v throws(OptionsError) in
            guard let qps = Double(v), qps.isFinite, qps > 0 else {
                throw OptionsError("--rate-limit-qps: \"\(v)\" is not a positive number")
            }
            o.rateLimitQPS = qps
        },
        Flag(name: "rate-limit-bucket", value: "N", defaultText: "cloudProviderRateLimitBucket",
             help: "ARM request burst per subscription") { options, value throws(OptionsError) in
            options.rateLimitBucket = try count(value, flag: "rate-limit-bucket")
        },
        Flag(name: "drain-timeout", value: "SECONDS", defaultText: "25",
             help: "on SIGTERM, how long calls in flight may take to finish") {
            options, value throws(OptionsError) in
            options.drainTimeout = try seconds(value, flag: "drain-timeout")
        },
        Flag(name: "allowed-uids", value: "UID,...", defaultText: "any",
             help: "only peers with these user IDs may connect") { o, v throws(OptionsError) in
            var uids = Set<UInt32>()
            for part in v.split(separator: ",", omittingEmptySubsequences: false) {
                guard let uid = UInt32(part.trimmingCharacters(in: .whitespaces)) else {
                    throw OptionsError("--allowed-uids: \"\(part)\" is not a user ID")
                }
                uids.insert(uid)
            }
            o.allowedUIDs = uids
        },
        Flag(name: "event-loops", value: "N", defaultText: "2",
             help: "threads serving connections") { options, value throws(OptionsError) in
            options.eventLoops = try count(value, flag: "event-loops", in: 1...64)
        },
        Flag(name: "metrics-address", value: "HOST:PORT", defaultText: "off",
             help: "serve Prometheus metrics, /healthz and /readyz here") { options, value in
            options.metricsAddress = value
        },
        Flag(name: "log-format", value: "text|json", defaultText: "text",
             help: "how log lines are written") { options, value throws(OptionsError) in
            guard value == "text" || value == "json" else {
                throw OptionsError("--log-format: \"\(value)\" is neither text nor json")
            }
            options.logFormat = value
        },
        Flag(name: "v", value: "N", defaultText: "0",
             help: "log verbosity: 0 start, stop and problems; 2 adds one line per call") {
            options, value throws(OptionsError) in
            options.verbosity = try count(value, flag: "v")
        },
        Flag(name: "help", value: nil, defaultText: "", help: "print this and exit") { o, _ in
            o.showHelp = true
        },
    ]

    /// Reads the arguments after the program name; `--flag value`, `--flag=value` and `-flag`
    /// spellings are all accepted.
    init(arguments: [String]) throws(OptionsError) {
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            guard argument.hasPrefix("-"), argument.count > 1 else {
                throw OptionsError("unexpected argument \"\(argument)\"; see --help")
            }
            let body = argument.drop(while: { $0 == "-" })
            let name: Substring
            var inlineValue: String?
            if let equals = body.firstIndex(of: "=") {
                name = body[..<equals]
                inlineValue = String(body[body.index(after: equals)...])
            } else {
                name = body
            }
            guard let flag = Options.flags.first(where: { $0.name == name }) else {
                throw OptionsError("unknown flag \(argument); see --help")
            }
            guard flag.value != nil else {
                try flag.apply(&self, "")
                continue
            }
            guard let value = inlineValue ?? remaining.popFirst() else {
                throw OptionsError("--\(flag.name) needs a value (\(flag.value!))")
            }
            try flag.apply(&self, value)
        }
        guard showHelp || !socketPath.isEmpty else {
            throw OptionsError("--socket is required; see --help")
        }
        // sun_path holds 108 bytes, a NUL included; an abstract name is bound without the NUL
        // but after the leading zero byte that stands for "@".
        guard socketPath.utf8.count <= 107 else {
            throw OptionsError(
                "--socket: the path is \(socketPath.utf8.count) bytes; a Unix socket path can "
                    + "have at most 107")
        }
        guard showHelp || !cloudConfigPath.isEmpty else {
            throw OptionsError("--cloud-config is required; see --help")
        }
    }

    /// The text `--help` prints: every flag with its default.
    static var usage: String {
        var text = "usage: vmssd --socket PATH --cloud-config FILE [flags]\n\n"
        text += "Answers Kubernetes cloud-provider instance questions for Azure over gRPC.\n\n"
        for flag in flags {
            let left = "  --\(flag.name)" + (flag.value.map { " \($0)" } ?? "")
            let padded = left.count < 34 ? left + String(repeating: " ", count: 34 - left.count)
                : left + "\n" + String(repeating: " ", count: 34)
            let suffix = flag.defaultText.isEmpty ? "" : " (default: \(flag.defaultText))"
            text += padded + flag.help + suffix + "\n"
        }
        return text
    }
}

/// A command line that cannot be run, with the message to print.
struct OptionsError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Reads a non-negative duration: plain seconds, or a number ending in ms, s, m or h.
func seconds(_ text: String, flag: String) throws(OptionsError) -> Double {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    var number = Substring(text)
    var scale = 1.0
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        number = text.dropLast(suffix.count)
        scale = factor
        break
    }
    guard let value = Double(number), value.isFinite, value >= 0 else {
        throw OptionsError("--\(flag): \"\(text)\" is not a duration like 30 or 30s")
    }
    return value * scale
}

/// Reads a duration that must be above zero, such as a TTL or a timeout.
func positiveSeconds(_ text: String, flag: String) throws(OptionsError) -> Double {
    let value = try seconds(text, flag: flag)
    guard value > 0 else { throw OptionsError("--\(flag): must be above zero, got \"\(text)\"") }
    return value
}

/// Reads a whole number within `range` (non-negative unless the range says otherwise).
func count(
    _ text: String, flag: String, in range: some RangeExpression<Int> = 0...
) throws(OptionsError) -> Int {
    guard let value = Int(text), value >= 0 else {
        throw OptionsError("--\(flag): \"\(text)\" is not a whole number")
    }
    guard range.contains(value) else {
        throw OptionsError("--\(flag): \(value) is out of range")
    }
    return value
}
