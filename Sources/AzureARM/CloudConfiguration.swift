import Foundation

/// Why the cloud configuration cannot be used; the message names the field at fault.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The offending field (`aadClientSecret`, `subscriptionId`, a flag, an environment variable).
    public let field: String
    /// What is wrong, naming `field`, never quoting a secret.
    public let message: String

    public init(field: String, _ message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { message }
}

/// The endpoints of one Azure cloud.
public struct CloudEndpoints: Sendable, Equatable {
    /// Azure Resource Manager, e.g. `https://management.azure.com`.
    public var resourceManager: URL
    /// Entra ID (AAD) authority host, e.g. `https://login.microsoftonline.com`.
    public var activeDirectory: URL
    /// The resource tokens are asked for, e.g. `https://management.azure.com/`.
    public var tokenAudience: String

    public init(resourceManager: URL, activeDirectory: URL, tokenAudience: String) {
        self.resourceManager = resourceManager
        self.activeDirectory = activeDirectory
        self.tokenAudience = tokenAudience
    }

    /// The public, China and US Government clouds, by the names `azure.json` uses.
    public static func named(_ name: String) -> CloudEndpoints? {
        func make(_ arm: String, _ aad: String, _ audience: String) -> CloudEndpoints {
            CloudEndpoints(
                resourceManager: URL(string: arm)!, activeDirectory: URL(string: aad)!,
                tokenAudience: audience)
        }
        switch name.lowercased() {
        case "", "azurepubliccloud", "azurecloud":
            return make(
                "https://management.azure.com", "https://login.microsoftonline.com",
                "https://management.azure.com/")
        case "azurechinacloud":
            return make(
                "https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn",
                "https://management.chinacloudapi.cn/")
        case "azureusgovernmentcloud", "azureusgovernment":
            return make(
                "https://management.usgovcloudapi.net", "https://login.microsoftonline.us",
                "https://management.usgovcloudapi.net/")
        default:
            return nil
        }
    }
}

/// How the program proves who it is to Entra ID.
public enum CredentialKind: Sendable, Equatable {
    /// A service principal's client ID and secret.
    case clientSecret(clientID: String, secret: String)
    /// The VM's managed identity: system-assigned when `identity` is nil.
    case managedIdentity(identity: UserAssignedIdentity?)
    /// A federated token file exchanged for an access token (Kubernetes workload identity).
    case workloadIdentity(clientID: String, tokenFile: String)
}

/// A user-assigned managed identity, named by its client ID or its full ARM resource ID.
public enum UserAssignedIdentity: Sendable, Equatable {
    case clientID(String)
    case resourceID(String)

    /// A value starting with `/subscriptions/` is a resource ID; anything else a client ID.
    public init(_ text: String) {
        self = text.lowercased().hasPrefix("/subscriptions/") ? .resourceID(text) : .clientID(text)
    }
}

/// Settings given on the command line, each replacing the file's value when set.
public struct ConfigurationOverrides: Sendable {
    public var cloud: String?
    public var tenantID: String?
    public var subscriptionID: String?
    public var resourceGroup: String?
    /// Replaces the cloud's ARM endpoint (tests point it at a loopback fake).
    public var resourceManagerEndpoint: String?
    /// Replaces the cloud's Entra ID endpoint.
    public var activeDirectoryEndpoint: String?
    /// Replaces the managed identity endpoint (also `VMSSD_IMDS_ENDPOINT`).
    public var managedIdentityEndpoint: String?
    /// Per-request timeout in seconds.
    public var requestTimeout: Double?
    public var rateLimitQPS: Double?
    public var rateLimitBucket: Int?
    public var backoffRetries: Int?

    public init() {}
}

/// Everything the ARM client needs, read from `azure.json`, the environment and overrides, and
/// checked: a loaded configuration has exactly one credential and only endpoints that are https
/// or plain http on a loopback host.
public struct CloudConfiguration: Sendable {
    /// The managed identity endpoint on a real Azure VM. Nothing in tests may use it.
    public static let defaultManagedIdentityEndpoint = "http://169.254.169.254"
    /// The environment variable that replaces the managed identity endpoint.
    public static let managedIdentityEndpointVariable = "VMSSD_IMDS_ENDPOINT"

    public var cloudName: String
    public var endpoints: CloudEndpoints
    public var managedIdentityEndpoint: URL
    public var tenantID: String
    public var subscriptionID: String
    public var resourceGroup: String
    public var location: String
    public var credential: CredentialKind
    public var vmType: String
    public var scaleSetCacheTTL: Double
    public var vmCacheTTL: Double
    /// Steady ARM reads per second allowed by the local token bucket.
    public var rateLimitQPS: Double
    /// Burst size of the local token bucket.
    public var rateLimitBucket: Int
    /// Retries of transient failures (408, 5xx, timeouts, resets) per request.
    public var backoffRetries: Int
    public var requestTimeout: Double

    /// Reads `azure.json` at `path`, applies `overrides`, and checks the result.
    /// - Parameters:
    ///   - environment: read for `AZURE_ENVIRONMENT_FILEPATH` and `VMSSD_IMDS_ENDPOINT`.
    /// - Throws: `ConfigurationError` naming the first field that is missing, malformed or
    ///   contradicts another.
    public static func load(
        path: String, overrides: ConfigurationOverrides = ConfigurationOverrides(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> CloudConfiguration {
        let data = try readRegularFile(path, field: "config file", name: "cloud config file")
        return try parse(data, overrides: overrides, environment: environment)
    }

    /// `load` for a file's contents already in memory.
    public static func parse(
        _ data: Data, overrides: ConfigurationOverrides = ConfigurationOverrides(),
        environment: [String: String] = [:]
    ) throws(ConfigurationError) -> CloudConfiguration {
        let file = try ConfigFile(data, name: "cloud config file")
        let cloudName = try file.string("cloud", override: overrides.cloud) ?? "AzurePublicCloud"
        var endpoints: CloudEndpoints
        if cloudName.lowercased() == "azurestackcloud" {
            endpoints = try stackEndpoints(environment: environment)
        } else if let known = CloudEndpoints.named(cloudName) {
            endpoints = known
        } else {
            throw ConfigurationError(
                field: "cloud",
                "cloud \"\(cloudName)\" is unknown; expected AzurePublicCloud, AzureChinaCloud, "
                    + "AzureUSGovernmentCloud or AzureStackCloud")
        }
        if let arm = overrides.resourceManagerEndpoint {
            endpoints.resourceManager = try endpoint(arm, field: "resourceManagerEndpoint")
        }
        if let aad = overrides.activeDirectoryEndpoint {
            endpoints.activeDirectory = try endpoint(aad, field: "activeDirectoryEndpoint")
        }
        try checkScheme(endpoints.resourceManager, field: "resourceManagerEndpoint")
        try checkScheme(endpoints.activeDirectory, field: "activeDirectoryEndpoint")
        let imdsText =
            overrides.managedIdentityEndpoint
            ?? environment[managedIdentityEndpointVariable] ?? defaultManagedIdentityEndpoint
        let imds = try endpoint(imdsText, field: "managedIdentityEndpoint", allowLinkLocal: true)

        let tenantID = try file.string("tenantId", override: overrides.tenantID) ?? ""
        let subscriptionID =
            try file.string("subscriptionId", override: overrides.subscriptionID) ?? ""
        guard !subscriptionID.isEmpty else {
            throw ConfigurationError(field: "subscriptionId", "subscriptionId is missing or empty")
        }
        let credential = try credentialKind(file, tenantID: tenantID)
        // In the file, 0 means the default, as the Azure cloud provider reads it; a flag's 0
        // is refused below.
        let qps: Double
        if let flag = overrides.rateLimitQPS {
            qps = flag
        } else {
            qps = try file.positive("cloudProviderRateLimitQPS", default: 10)
        }
        let bucket: Int
        if let flag = overrides.rateLimitBucket {
            bucket = flag
        } else {
            bucket = Int(
                try file.positive("cloudProviderRateLimitBucket", default: 100, whole: true))
        }
        let retries =
            try file.int("cloudProviderBackoffRetries", override: overrides.backoffRetries) ?? 3
        let timeout = overrides.requestTimeout ?? 10
        guard qps > 0, qps.isFinite else {
            throw ConfigurationError(
                field: "cloudProviderRateLimitQPS", "cloudProviderRateLimitQPS must be above 0")
        }
        guard bucket >= 1 else {
            throw ConfigurationError(
                field: "cloudProviderRateLimitBucket",
                "cloudProviderRateLimitBucket must be at least 1")
        }
        guard (0...20).contains(retries) else {
            throw ConfigurationError(
                field: "cloudProviderBackoffRetries", "cloudProviderBackoffRetries must be 0 to 20")
        }
        guard timeout > 0, timeout.isFinite else {
            throw ConfigurationError(field: "requestTimeout", "request timeout must be above 0")
        }
        return CloudConfiguration(
            cloudName: cloudName, endpoints: endpoints, managedIdentityEndpoint: imds,
            tenantID: tenantID, subscriptionID: subscriptionID,
            resourceGroup: try file.string("resourceGroup", override: overrides.resourceGroup)
                ?? "",
            location: (try file.string("location")) ?? "", credential: credential,
            vmType: (try file.string("vmType")) ?? "vmss",
            scaleSetCacheTTL: try file.positive(
                "vmssVirtualMachinesCacheTTLInSeconds", default: 600),
            vmCacheTTL: try file.positive("vmCacheTTLInSeconds", default: 60),
            rateLimitQPS: qps, rateLimitBucket: bucket, backoffRetries: retries,
            requestTimeout: timeout)
    }

    private static func credentialKind(
        _ file: ConfigFile, tenantID: String
    ) throws(ConfigurationError) -> CredentialKind {
        let clientID = (try file.string("aadClientId")) ?? ""
        let secret = (try file.string("aadClientSecret")) ?? ""
        let managed = (try file.bool("useManagedIdentityExtension")) ?? false
        let workload = (try file.bool("useFederatedWorkloadIdentityExtension")) ?? false
        let userAssigned = (try file.string("userAssignedIdentityID")) ?? ""
        let tokenFile = (try file.string("aadFederatedTokenFile")) ?? ""
        if managed && workload {
            throw ConfigurationError(
                field: "useFederatedWorkloadIdentityExtension",
                "useManagedIdentityExtension and useFederatedWorkloadIdentityExtension are both "
                    + "true; choose one")
        }
        if managed {
            guard secret.isEmpty else {
                throw ConfigurationError(
                    field: "aadClientSecret",
                    "aadClientSecret is set while useManagedIdentityExtension is true; choose one")
            }
            return .managedIdentity(
                identity: userAssigned.isEmpty ? nil : UserAssignedIdentity(userAssigned))
        }
        if workload {
            guard secret.isEmpty else {
                throw ConfigurationError(
                    field: "aadClientSecret",
                    "aadClientSecret is set while useFederatedWorkloadIdentityExtension is true; "
                        + "choose one")
            }
            guard !clientID.isEmpty else {
                throw ConfigurationError(
                    field: "aadClientId", "aadClientId is required for workload identity")
            }
            guard !tokenFile.isEmpty else {
                throw ConfigurationError(
                    field: "aadFederatedTokenFile",
                    "aadFederatedTokenFile is required for workload identity")
            }
            guard !tenantID.isEmpty else {
                throw ConfigurationError(
                    field: "tenantId", "tenantId is required for workload identity")
            }
            return .workloadIdentity(clientID: clientID, tokenFile: tokenFile)
        }
        guard !secret.isEmpty || !clientID.isEmpty else {
            throw ConfigurationError(
                field: "aadClientSecret",
                "no credential configured: set aadClientId and aadClientSecret, "
                    + "useManagedIdentityExtension, or useFederatedWorkloadIdentityExtension")
        }
        guard !clientID.isEmpty else {
            throw ConfigurationError(
                field: "aadClientId", "aadClientId is required with aadClientSecret")
        }
        guard !secret.isEmpty else {
            throw ConfigurationError(
                field: "aadClientSecret", "aadClientSecret is missing or empty")
        }
        guard !tenantID.isEmpty else {
            throw ConfigurationError(field: "tenantId", "tenantId is required with aadClientSecret")
        }
        return .clientSecret(clientID: clientID, secret: secret)
    }

    private static func stackEndpoints(
        environment: [String: String]
    ) throws(ConfigurationError) -> CloudEndpoints {
        let variable = "AZURE_ENVIRONMENT_FILEPATH"
        guard let path = environment[variable], !path.isEmpty else {
            throw ConfigurationError(
                field: variable,
                "cloud AzureStackCloud needs \(variable) naming the environment file")
        }
        let data = try readRegularFile(path, field: variable, name: "\(variable) file")
        let file = try ConfigFile(data, name: "\(variable) file")
        func required(_ key: String) throws(ConfigurationError) -> String {
            guard let value = try file.string(key), !value.isEmpty else {
                throw ConfigurationError(field: key, "\(key) is missing from the \(variable) file")
            }
            return value
        }
        return CloudEndpoints(
            resourceManager: try endpoint(
                try required("resourceManagerEndpoint"),
                field: "resourceManagerEndpoint"),
            activeDirectory: try endpoint(
                try required("activeDirectoryEndpoint"),
                field: "activeDirectoryEndpoint"),
            tokenAudience: try required("tokenAudience"))
    }

    /// The largest config file read; anything longer is not an `azure.json`.
    static let maximumFileBytes = 4 << 20

    /// Reads a regular file, saying why when it cannot (the system's reason: no such file,
    /// permission denied), and refusing directories, FIFOs, sockets and devices. The file is
    /// opened without blocking and checked on the open descriptor, so a FIFO put in its place
    /// cannot stall the start.
    static func readRegularFile(
        _ path: String, field: String, name: String
    ) throws(ConfigurationError) -> Data {
        func failure(_ reason: String) -> ConfigurationError {
            ConfigurationError(field: field, "cannot read \(name) \(path): \(reason)")
        }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw failure(String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure(String(cString: strerror(errno))) }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw failure("is a directory")
        case S_IFIFO: throw failure("is a FIFO, not a regular file")
        case S_IFSOCK: throw failure("is a socket, not a regular file")
        default: throw failure("is a device, not a regular file")
        }
        guard info.st_size <= maximumFileBytes else {
            throw failure("larger than \(maximumFileBytes >> 20) MiB")
        }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure(String(cString: strerror(errno)))
            }
            data.append(contentsOf: buffer[..<count])
            guard data.count <= maximumFileBytes else {
                throw failure("larger than \(maximumFileBytes >> 20) MiB")
            }
        }
        return data
    }

    /// Parses an endpoint URL, dropping a trailing slash, and checks its scheme.
    static func endpoint(
        _ text: String, field: String, allowLinkLocal: Bool = false
    ) throws(ConfigurationError) -> URL {
        var trimmed = text
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let url = URL(string: trimmed), url.host != nil, url.query == nil else {
            throw ConfigurationError(field: field, "\(field) is not an absolute URL: \(text)")
        }
        // The real managed identity endpoint is plain http on a link-local address, by design.
        if allowLinkLocal, url.scheme?.lowercased() == "http", url.host == "169.254.169.254" {
            return url
        }
        try checkScheme(url, field: field)
        return url
    }

    /// Plain http is allowed only to loopback hosts, where nothing can read the traffic.
    static func checkScheme(_ url: URL, field: String) throws(ConfigurationError) {
        switch url.scheme?.lowercased() {
        case "https":
            return
        case "http":
            guard isLoopback(host: url.host ?? "") else {
                throw ConfigurationError(
                    field: field,
                    "\(field) uses plain http to a host that is not loopback "
                        + "(\(url.host ?? "")); use https")
            }
        default:
            throw ConfigurationError(field: field, "\(field) must be an https URL")
        }
    }

    /// 127.0.0.0/8, ::1 and localhost.
    public static func isLoopback(host: String) -> Bool {
        let bare =
            host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare.lowercased() == "localhost" || bare == "::1" || bare == "0:0:0:0:0:0:0:1" {
            return true
        }
        let parts = bare.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { part in UInt8(part) != nil }
    }
}

/// One value of a config file, kept only in the kinds the settings use.
enum ConfigValue: Decodable {
    case string(String), bool(Bool), number(Double), null, other

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else {
            self = .other
        }
    }
}

/// A JSON object read from a config file, with lookups that name the field when it has the
/// wrong kind. Unknown fields are ignored.
struct ConfigFile {
    let values: [String: ConfigValue]
    let name: String

    init(_ data: Data, name: String) throws(ConfigurationError) {
        self.name = name
        // A UTF-8 byte order mark is common in files written on Windows.
        var bytes = data
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        do {
            _ = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        } catch {
            let reason =
                (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
                ?? "unreadable"
            throw ConfigurationError(field: name, "\(name) is not valid JSON: \(reason)")
        }
        guard let object = try? JSONDecoder().decode([String: ConfigValue].self, from: Data(bytes))
        else {
            throw ConfigurationError(
                field: name, "\(name) is valid JSON but not a JSON object {...}")
        }
        values = object
    }

    /// The override when one is given, else the file's value.
    func string(_ key: String, override: String?) throws(ConfigurationError) -> String? {
        if let override { return override }
        return try string(key)
    }

    func number(_ key: String, override: Double?) throws(ConfigurationError) -> Double? {
        if let override { return override }
        return try number(key)
    }

    func int(_ key: String, override: Int?) throws(ConfigurationError) -> Int? {
        if let override { return override }
        guard let value = try number(key) else { return nil }
        guard value == value.rounded(), abs(value) < 1e9 else {
            throw ConfigurationError(field: key, "\(key) in the \(name) must be a whole number")
        }
        return Int(value)
    }

    /// A number that must be above 0, where absent or 0 means `default` (the Azure cloud
    /// provider's rule for TTLs and rate limits) and a negative value is an error.
    func positive(
        _ key: String, default value: Double, whole: Bool = false
    ) throws(ConfigurationError) -> Double {
        guard let number = whole ? try int(key, override: nil).map(Double.init) : try number(key),
            number != 0
        else { return value }
        guard number > 0 else {
            throw ConfigurationError(
                field: key,
                "\(key) in the \(name) must not be negative (0 means the default, "
                    + "\(value == value.rounded() ? String(Int(value)) : String(value)))")
        }
        return number
    }

    func string(_ key: String) throws(ConfigurationError) -> String? {
        switch values[key] {
        case nil, .null: return nil
        case .string(let text): return text
        default:
            throw ConfigurationError(field: key, "\(key) in the \(name) must be a string")
        }
    }

    func bool(_ key: String) throws(ConfigurationError) -> Bool? {
        switch values[key] {
        case nil, .null: return nil
        case .bool(let value): return value
        case .string(let text) where ["true", "false"].contains(text.lowercased()):
            return text.lowercased() == "true"
        default:
            throw ConfigurationError(field: key, "\(key) in the \(name) must be true or false")
        }
    }

    func number(_ key: String) throws(ConfigurationError) -> Double? {
        switch values[key] {
        case nil, .null: return nil
        case .number(let value): return value
        default:
            throw ConfigurationError(field: key, "\(key) in the \(name) must be a number")
        }
    }
}

extension CredentialKind: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Names the kind and client ID only; the secret never appears.
    public var description: String {
        switch self {
        case .clientSecret(let clientID, _):
            "client secret (client ID \(clientID), secret redacted)"
        case .managedIdentity(nil): "system-assigned managed identity"
        case .managedIdentity(.clientID(let id)?):
            "user-assigned managed identity (client ID \(id))"
        case .managedIdentity(.resourceID(let id)?): "user-assigned managed identity (\(id))"
        case .workloadIdentity(let clientID, let file):
            "workload identity (client ID \(clientID), token file \(file))"
        }
    }

    public var debugDescription: String { description }

    /// Reflection shows the redacted description, so dumping a configuration leaks nothing.
    public var customMirror: Mirror { Mirror(self, children: ["kind": description]) }
}
