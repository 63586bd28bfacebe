import AzureModel
import Foundation
import Synchronization
import Testing

@testable import AzureARM

@Suite("Cloud configuration")
struct ConfigurationTests {
    static let secretFile = #"""
        {"cloud":"AzurePublicCloud","tenantId":"t","subscriptionId":"s","resourceGroup":"rg",
         "location":"westeurope","aadClientId":"c","aadClientSecret":"very-secret","vmType":"vmss",
         "vmssVirtualMachinesCacheTTLInSeconds":300,"vmCacheTTLInSeconds":30,
         "cloudProviderRateLimitQPS":6,"cloudProviderRateLimitBucket":20,
         "cloudProviderBackoffRetries":2,"someFieldNobodyKnows":{"x":[1]}}
        """#

    func parse(
        _ text: String, _ overrides: ConfigurationOverrides = ConfigurationOverrides(),
        environment: [String: String] = [:]
    ) throws(ConfigurationError) -> CloudConfiguration {
        try CloudConfiguration.parse(
            Data(text.utf8), overrides: overrides, environment: environment)
    }

    @Test("a client secret file reads every field and ignores unknown ones")
    func fullFile() throws {
        let configuration = try parse(Self.secretFile)
        #expect(configuration.credential == .clientSecret(clientID: "c", secret: "very-secret"))
        #expect(
            configuration.endpoints.resourceManager.absoluteString == "https://management.azure.com"
        )
        #expect(configuration.subscriptionID == "s")
        #expect(configuration.resourceGroup == "rg")
        #expect(configuration.scaleSetCacheTTL == 300)
        #expect(configuration.vmCacheTTL == 30)
        #expect(configuration.rateLimitQPS == 6)
        #expect(configuration.rateLimitBucket == 20)
        #expect(configuration.backoffRetries == 2)
        #expect(configuration.requestTimeout == 10)
        #expect(
            configuration.managedIdentityEndpoint.absoluteString
                == CloudConfiguration.defaultManagedIdentityEndpoint)
        #expect(!"\(configuration)".contains("very-secret"))
        #expect(!String(reflecting: configuration).contains("very-secret"))
    }

    @Test("flags override the file and the environment moves the identity endpoint")
    func overrides() throws {
        var overrides = ConfigurationOverrides()
        overrides.subscriptionID = "flag-sub"
        overrides.resourceManagerEndpoint = "http://127.0.0.1:9/"
        overrides.rateLimitQPS = 1
        let configuration = try parse(
            Self.secretFile, overrides,
            environment: ["VMSSD_IMDS_ENDPOINT": "http://[::1]:8080"])
        #expect(configuration.subscriptionID == "flag-sub")
        #expect(configuration.endpoints.resourceManager.absoluteString == "http://127.0.0.1:9")
        #expect(configuration.managedIdentityEndpoint.absoluteString == "http://[::1]:8080")
        #expect(configuration.rateLimitQPS == 1)
    }

    @Test(
        "each named cloud has its own ARM, Entra ID and audience",
        arguments: [
            (
                "AzureChinaCloud", "https://management.chinacloudapi.cn",
                "https://login.chinacloudapi.cn"
            ),
            (
                "AzureUSGovernmentCloud", "https://management.usgovcloudapi.net",
                "https://login.microsoftonline.us"
            ),
            (
                "azurepubliccloud", "https://management.azure.com",
                "https://login.microsoftonline.com"
            ),
        ])
    func clouds(name: String, arm: String, aad: String) throws {
        let configuration = try parse(
            #"{"cloud":"\#(name)","subscriptionId":"s","useManagedIdentityExtension":true}"#)
        #expect(configuration.endpoints.resourceManager.absoluteString == arm)
        #expect(configuration.endpoints.activeDirectory.absoluteString == aad)
        #expect(configuration.endpoints.tokenAudience == arm + "/")
        #expect(configuration.credential == .managedIdentity(identity: nil))
    }

    @Test("Azure Stack reads its endpoints from the environment file")
    func azureStack() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "stack-\(UUID()).json")
        let environmentFile = #"""
            {"name": "x",
             "resourceManagerEndpoint": "https://management.local.azurestack.external/",
             "activeDirectoryEndpoint": "https://adfs.local.azurestack.external/adfs/",
             "tokenAudience": "https://management.adfs.azurestack.local/abc"}
            """#
        try environmentFile.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let configuration = try parse(
            #"""
            {"cloud": "AzureStackCloud", "subscriptionId": "s", "useManagedIdentityExtension": true,
             "userAssignedIdentityID": "/subscriptions/s/x"}
            """#,
            environment: ["AZURE_ENVIRONMENT_FILEPATH": file.path])
        #expect(
            configuration.endpoints.resourceManager.host == "management.local.azurestack.external")
        #expect(
            configuration.endpoints.tokenAudience == "https://management.adfs.azurestack.local/abc")
        #expect(
            configuration.credential
                == .managedIdentity(identity: .resourceID("/subscriptions/s/x")))
    }

    @Test(
        "missing or contradictory settings name the field at fault",
        arguments: [
            (#"{"aadClientId":"c","aadClientSecret":"x","tenantId":"t"}"#, "subscriptionId"),
            (#"{"subscriptionId":"s"}"#, "aadClientSecret"),
            (#"{"subscriptionId":"s","aadClientSecret":"x","tenantId":"t"}"#, "aadClientId"),
            (#"{"subscriptionId":"s","aadClientId":"c","tenantId":"t"}"#, "aadClientSecret"),
            (#"{"subscriptionId":"s","aadClientId":"c","aadClientSecret":"x"}"#, "tenantId"),
            (
                #"{"subscriptionId":"s","aadClientSecret":"x","useManagedIdentityExtension":true}"#,
                "aadClientSecret"
            ),
            (
                #"{"subscriptionId":"s","useManagedIdentityExtension":true,"#
                    + #""useFederatedWorkloadIdentityExtension":true}"#,
                "useFederatedWorkloadIdentityExtension"
            ),
            (
                #"{"subscriptionId":"s","tenantId":"t","aadClientId":"c","#
                    + #""useFederatedWorkloadIdentityExtension":true}"#,
                "aadFederatedTokenFile"
            ),
            (
                #"{"subscriptionId":"s","useManagedIdentityExtension":"yes"}"#,
                "useManagedIdentityExtension"
            ),
            (#"{"subscriptionId":7,"useManagedIdentityExtension":true}"#, "subscriptionId"),
            (#"{"cloud":"Mars","subscriptionId":"s","useManagedIdentityExtension":true}"#, "cloud"),
            (
                #"{"cloud":"AzureStackCloud","subscriptionId":"s","#
                    + #""useManagedIdentityExtension":true}"#,
                "AZURE_ENVIRONMENT_FILEPATH"
            ),
            (
                #"{"subscriptionId":"s","useManagedIdentityExtension":true,"#
                    + #""cloudProviderRateLimitQPS":-1}"#,
                "cloudProviderRateLimitQPS"
            ),
            (
                #"{"subscriptionId":"s","useManagedIdentityExtension":true,"#
                    + #""cloudProviderRateLimitBucket":0.5}"#,
                "cloudProviderRateLimitBucket"
            ),
            (
                #"{"subscriptionId":"s","useManagedIdentityExtension":true,"#
                    + #""cloudProviderBackoffRetries":-1}"#,
                "cloudProviderBackoffRetries"
            ),
            (
                #"{"subscriptionId":"s","useManagedIdentityExtension":true,"#
                    + #""cloudProviderRateLimitBucket":-5}"#,
                "cloudProviderRateLimitBucket"
            ),
            (
                #"{"subscriptionId":"s","useManagedIdentityExtension":true,"#
                    + #""vmssVirtualMachinesCacheTTLInSeconds":-1}"#,
                "vmssVirtualMachinesCacheTTLInSeconds"
            ),
            (
                #"{"subscriptionId":"s","useManagedIdentityExtension":true,"#
                    + #""vmCacheTTLInSeconds":-0.5}"#,
                "vmCacheTTLInSeconds"
            ),
            ("not json", "cloud config file"),
        ])
    func errors(text: String, field: String) {
        do {
            _ = try parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.field == field)
            #expect(error.message.contains(field), "message: \(error.message)")
            #expect(!error.message.contains("very-secret"))
        }
    }

    @Test(
        "plain http is refused for hosts that are not loopback, before anything is sent",
        arguments: [
            ("http://10.0.0.1", "resourceManagerEndpoint", false),
            ("http://management.azure.com", "resourceManagerEndpoint", false),
            ("http://127.0.0.1:8080", "resourceManagerEndpoint", true),
            ("http://localhost:1", "resourceManagerEndpoint", true),
            ("http://[::1]:1", "resourceManagerEndpoint", true),
            ("ftp://127.0.0.1", "resourceManagerEndpoint", false),
            ("http://192.168.1.1", "activeDirectoryEndpoint", false),
            // A name that merely starts with the managed-identity address is not that address.
            (
                CloudConfiguration.defaultManagedIdentityEndpoint + ".example.com",
                "managedIdentityEndpoint", false
            ),
        ])
    func plainHTTP(url: String, field: String, accepted: Bool) {
        var overrides = ConfigurationOverrides()
        switch field {
        case "resourceManagerEndpoint": overrides.resourceManagerEndpoint = url
        case "activeDirectoryEndpoint": overrides.activeDirectoryEndpoint = url
        default: overrides.managedIdentityEndpoint = url
        }
        do {
            _ = try parse(Self.secretFile, overrides)
            #expect(accepted, "accepted \(url)")
        } catch {
            #expect(!accepted)
            #expect(error.field == field)
        }
    }
}

@Suite("Retry-After, classification and the throttle gate")
struct ThrottlingTests {
    @Test(
        "Retry-After reads seconds and HTTP dates, and defaults when absent or unreadable",
        arguments: [
            ("5", 5.0), ("0", 1.0), (nil, 30.0), ("", 30.0), ("soon", 30.0), ("999999", 3600.0),
            ("Thu, 01 Jan 1970 00:01:40 GMT", 40.0), ("Thu, 01 Jan 1970 00:00:10 GMT", 1.0),
        ] as [(String?, Double)])
    func retryAfter(header: String?, seconds: Double) {
        #expect(RetryAfter.seconds(header, now: 60) == seconds)
    }

    @Test(
        "each status and code maps to one CloudError",
        arguments: [
            (404, "ResourceNotFound", "gone"), (404, "ParentResourceNotFound", "gone"),
            (404, "ResourceGroupNotFound", "gone"), (404, "NotFound", "gone"),
            (404, "resourcenotfound", "gone"), (404, "SubscriptionNotFound", "fault"),
            (404, "InvalidResourceType", "fault"), (404, nil, "fault"),
            (401, "InvalidAuthenticationToken", "fault"),
            (403, "AuthorizationFailed", "fault"), (400, "InvalidApiVersionParameter", "fault"),
            (409, nil, "fault"), (429, nil, "throttled"), (408, nil, "transient"),
            (500, nil, "transient"),
            (502, nil, "transient"), (503, "ServiceUnavailable", "transient"),
            (504, nil, "transient"),
            (200, nil, "none"), (204, nil, "none"),
        ] as [(Int, String?, String)])
    func classify(status: Int, code: String?, expected: String) {
        let error = ARMClassifier.classify(status: status, code: code, now: 100)
        let kind: String =
            switch error {
            case .gone?: "gone"
            case .throttled(let until)?: until == 130 ? "throttled" : "throttled at \(until)"
            case .transient?: "transient"
            case .fault?: "fault"
            case nil: "none"
            }
        #expect(kind == expected)
    }

    /// A clock that moves only when told to, or when someone sleeps on it.
    final class ManualClock: Sendable {
        let time = Mutex(1000.0)
        var clock: ARMClock {
            ARMClock(
                now: { self.time.withLock { $0 } }, sleep: { seconds in self.advance(seconds) })
        }
        func advance(_ seconds: Double) { time.withLock { $0 += seconds } }
    }

    @Test("a closed gate refuses at once until its time passes, then lets requests through")
    func gate() async throws {
        let manual = ManualClock()
        let gate = ThrottleGate(qps: 100, burst: 100, clock: manual.clock)
        try await gate.admit("s")
        gate.close("s", until: 1010)
        gate.close("s", until: 1005)
        await #expect(throws: CloudError.throttled(until: 1010)) { try await gate.admit("s") }
        try await gate.admit("other")
        #expect(gate.secondsUntilOpen()["s"] == 10)
        manual.advance(9.9)
        await #expect(throws: CloudError.throttled(until: 1010)) { try await gate.admit("s") }
        manual.advance(0.2)
        try await gate.admit("s")
        #expect(gate.secondsUntilOpen()["s"] == 0)
    }

    @Test("an empty bucket makes callers wait for tokens at the configured rate, not fail")
    func bucket() async throws {
        let manual = ManualClock()
        let gate = ThrottleGate(qps: 2, burst: 3, clock: manual.clock)
        for _ in 0..<3 { try await gate.admit("s") }
        #expect(manual.time.withLock { $0 } == 1000)
        for _ in 0..<4 { try await gate.admit("s") }
        #expect(abs(manual.time.withLock { $0 } - 1002) < 0.001)
    }
}

extension ConfigurationTests {
    @Test("a TTL or rate limit of 0 in the file means the default, as the Azure provider reads it")
    func zeroMeansDefault() throws {
        let configuration = try parse(
            #"{"subscriptionId":"s","useManagedIdentityExtension":true,"#
                + #""vmssVirtualMachinesCacheTTLInSeconds":0,"vmCacheTTLInSeconds":0,"#
                + #""cloudProviderRateLimitQPS":0,"cloudProviderRateLimitBucket":0,"#
                + #""cloudProviderBackoffRetries":0}"#)
        #expect(configuration.scaleSetCacheTTL == 600)
        #expect(configuration.vmCacheTTL == 60)
        #expect(configuration.rateLimitQPS == 10)
        #expect(configuration.rateLimitBucket == 100)
        // Retries of 0 mean what they say: no retry.
        #expect(configuration.backoffRetries == 0)
        var flags = ConfigurationOverrides()
        flags.rateLimitQPS = 0
        #expect(throws: ConfigurationError.self) {
            try parse(#"{"subscriptionId":"s","useManagedIdentityExtension":true}"#, flags)
        }
    }

    @Test("invalid JSON is named as such, with the parser's position; other JSON is not an object")
    func invalidJSON() {
        for (text, expected) in [
            (#"{"subscriptionId": "s",, }"#, "not valid JSON: Invalid value around character"),
            (#"["subscriptionId"]"#, "valid JSON but not a JSON object"),
        ] {
            do {
                _ = try parse(text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.message.contains(expected), "message: \(error.message)")
            }
        }
    }

    /// The message `load` gives for `path`, or nil when it loaded.
    func loadError(_ path: String) -> String? {
        do {
            _ = try CloudConfiguration.load(path: path, environment: [:])
            return nil
        } catch {
            return error.message
        }
    }

    @Test("a config file that cannot be read says why, and a FIFO is refused without blocking")
    func unreadableFiles() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("missing.json").path
        #expect(loadError(missing)?.contains("No such file or directory") == true)
        #expect(loadError(directory.path)?.contains("is a directory") == true)

        let fifo = directory.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let started = Date()
        #expect(loadError(fifo)?.contains("not a regular file") == true)
        #expect(Date().timeIntervalSince(started) < 2)

        let file = directory.appendingPathComponent("azure.json")
        try Data(#"{"subscriptionId":"s","useManagedIdentityExtension":true}"#.utf8).write(to: file)
        #expect(loadError(file.path) == nil)
        // Root reads any file, so the permission check only means something for other users.
        if geteuid() != 0 {
            #expect(chmod(file.path, 0) == 0)
            #expect(loadError(file.path)?.contains("Permission denied") == true)
        }
    }
}
