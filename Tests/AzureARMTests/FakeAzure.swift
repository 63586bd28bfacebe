import AzureModel
import Foundation
import Testing

@testable import AzureARM

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A running `fakeazure/fake_azure.py` on a free loopback port, stopped when released.
final class FakeAzure: @unchecked Sendable {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fakeazure/fake_azure.py")

    static let secret = "s3cr3t-value-do-not-log"
    static let subscription = "sub-1"
    static let group = ResourceGroupRef(subscriptionID: "sub-1", name: "rg-1")
    static let pool = ScaleSetRef(resourceGroup: group, name: "pool")

    static var inventory: [String: Any] {
        [
            "tokenLifetimeSeconds": 3600,
            "credentials": [
                "tenantId": "tenant-1",
                "clientSecrets": [["clientId": "client-1", "clientSecret": secret]],
                "workloadIdentities": [["clientId": "wi-client", "assertions": ["assertion-one"]]],
                "managedIdentity": [
                    "systemAssigned": true,
                    "userAssigned": [
                        [
                            "clientId": "ua-client",
                            "resourceId": "/subscriptions/sub-1/resourceGroups/ids/providers/"
                                + "Microsoft.ManagedIdentity/userAssignedIdentities/ua",
                        ]
                    ],
                ],
            ],
            "subscriptions": [
                "sub-1": [
                    "resourceGroups": [
                        "rg-1": [
                            "location": "westeurope",
                            "scaleSets": [
                                [
                                    "name": "pool", "computerNamePrefix": "pool", "capacity": 25,
                                    "zones": ["1", "2", "3"],
                                ],
                                ["name": "Flex", "orchestrationMode": "Flexible", "capacity": 0],
                            ],
                            "virtualMachines": [["name": "solo", "privateIp": "10.1.0.4"]],
                        ]
                    ]
                ]
            ],
        ]
    }

    let process: Process
    let directory: URL
    let port: Int
    var base: String { "http://127.0.0.1:\(port)" }

    private init(process: Process, directory: URL, port: Int) {
        self.process = process
        self.directory = directory
        self.port = port
    }

    /// Starts the fake and waits for its port without holding a thread: Swift Testing runs the
    /// suites on the few threads of the concurrency pool, and a blocking wait here stalled other
    /// suites' calls by seconds.
    static func start(pageSize: Int = 10) async throws -> FakeAzure {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("fakeazure-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let inventoryFile = directory.appendingPathComponent("inventory.json")
        try JSONSerialization.data(withJSONObject: Self.inventory).write(to: inventoryFile)
        let portFile = directory.appendingPathComponent("port")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", Self.script.path, "--port", "0", "--inventory", inventoryFile.path,
            "--page-size", "\(pageSize)", "--port-file", portFile.path,
        ]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if let text = try? String(contentsOf: portFile, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return FakeAzure(process: process, directory: directory, port: port)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        process.terminate()
        throw CloudError.fault("fake Azure did not start")
    }

    deinit {
        // Reaped off the concurrency pool, for the same reason as in `start`.
        let process = process
        let directory = directory
        process.terminate()
        DispatchQueue.global().async {
            let deadline = Date().addingTimeInterval(3)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// Sends a control call and returns the decoded JSON answer.
    @discardableResult
    func control(
        _ method: String, _ path: String, _ body: [String: Any] = [:]
    ) async throws -> [String: Any] {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        if !body.isEmpty {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 200, "control \(path)")
        return (try JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    /// How many requests of one operation the fake received.
    func count(_ operation: String) async throws -> Int {
        (try await control("GET", "/_fake/counts")[operation] as? Int) ?? -1
    }

    func inject(_ fault: [String: Any]) async throws {
        try await control("POST", "/_fake/faults", fault)
    }

    /// Injects a fault written as JSON text.
    func inject(json: String, operation: String) async throws {
        var fault = try #require(
            try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        fault["operation"] = operation
        try await inject(fault)
    }

    /// A configuration pointing every endpoint at this fake.
    func configuration(
        _ credentialFields: [String: Any] = ["aadClientId": "client-1", "aadClientSecret": secret],
        retries: Int = 3, timeout: Double = 5
    ) throws -> CloudConfiguration {
        var file: [String: Any] = [
            "cloud": "AzurePublicCloud", "tenantId": "tenant-1",
            "subscriptionId": Self.subscription,
            "resourceGroup": "rg-1", "cloudProviderBackoffRetries": retries,
        ]
        file.merge(credentialFields) { $1 }
        var overrides = ConfigurationOverrides()
        overrides.resourceManagerEndpoint = base
        overrides.activeDirectoryEndpoint = base
        overrides.managedIdentityEndpoint = base
        overrides.requestTimeout = timeout
        return try CloudConfiguration.parse(
            try JSONSerialization.data(withJSONObject: file), overrides: overrides)
    }

    /// A client with short backoff, so retry tests run quickly.
    func client(_ configuration: CloudConfiguration) -> ARMClient {
        var options = ARMClient.Options()
        options.backoffBase = 0.01
        return ARMClient(configuration: configuration, options: options)
    }
}
