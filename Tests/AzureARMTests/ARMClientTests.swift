import AzureModel
import Foundation
import Testing

@testable import AzureARM

/// Catches the `CloudError` of a read, or records that it unexpectedly succeeded.
func cloudError<T>(_ body: () async throws -> T) async -> CloudError? {
    do {
        let value = try await body()
        Issue.record("expected a CloudError, got \(value)")
        return nil
    } catch let error as CloudError {
        return error
    } catch {
        Issue.record("expected a CloudError, got \(error)")
        return nil
    }
}

@Suite("ARM client against the fake Azure over HTTP")
struct ARMClientTests {
    @Test("a client secret token is fetched once and every page of a listing is read")
    func clientSecretAndPaging() async throws {
        let fake = try await FakeAzure.start(pageSize: 10)
        let client = fake.client(try fake.configuration())
        let vms = try await client.listScaleSetVirtualMachines(FakeAzure.pool)
        #expect(vms.count == 25)
        #expect(Set(vms.compactMap(\.instanceID)) == Set((0..<25).map(String.init)))
        let twelve = try #require(vms.first { $0.instanceID == "12" })
        #expect(twelve.computerName == "pool00000c")
        #expect(twelve.powerState == .running)
        #expect(twelve.provisioningState == .succeeded)
        #expect(twelve.zones == ["1"])
        #expect(try await fake.count("list_vmss_vms") == 3)
        #expect(client.counters.count(.listScaleSetVMs, .ok) == 3)
        #expect(try await fake.count("token_aad") == 1)
        #expect(client.counters.tokenRenewals == 1)
    }

    @Test("many concurrent callers share one token request")
    func singleFlight() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration())
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask { try await client.listScaleSets(FakeAzure.group).count }
            }
            for try await count in group { #expect(count == 2) }
        }
        #expect(try await fake.count("token_aad") == 1)
        #expect(client.counters.tokenRenewals == 1)
    }

    @Test("a token is renewed before it expires, and a 401 renews once and retries")
    func renewal() async throws {
        let fake = try await FakeAzure.start()
        try await fake.control("POST", "/_fake/config", ["tokenLifetimeSeconds": 2])
        let client = fake.client(try fake.configuration())
        _ = try await client.listScaleSets(FakeAzure.group)
        try await Task.sleep(for: .milliseconds(1900))
        _ = try await client.listScaleSets(FakeAzure.group)
        #expect(client.counters.tokenRenewals == 2)
        #expect(client.counters.count(.listScaleSets, .fault) == 0)

        try await fake.control("POST", "/_fake/config", ["tokenLifetimeSeconds": 3600])
        try await fake.control("POST", "/_fake/tokens/expire")
        let sets = try await client.listScaleSets(FakeAzure.group)
        #expect(sets.map(\.ref.name).sorted() == ["flex", "pool"])
        #expect(sets.first { $0.ref.name == "flex" }?.orchestrationMode == .flexible)
        #expect(client.counters.tokenRenewals == 3)
        #expect(client.counters.count(.listScaleSets, .fault) == 1)
        #expect(try await fake.count("list_vmss") == 4)
    }

    @Test("a second 401 after renewing is a fault, not a loop")
    func repeatedUnauthorized() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration())
        try await fake.inject(["operation": "list_vmss", "status": 401, "count": 5])
        let error = await cloudError { try await client.listScaleSets(FakeAzure.group) }
        guard case .fault(let message)? = error else {
            Issue.record("expected a fault, got \(String(describing: error))")
            return
        }
        #expect(message.contains("401"))
        #expect(try await fake.count("list_vmss") == 2)
        #expect(client.counters.tokenRenewals == 2)
    }

    @Test(
        "managed identity tokens come from the identity endpoint, system or user-assigned",
        arguments: [
            nil, "ua-client",
            "/subscriptions/sub-1/resourceGroups/ids/providers/"
                + "Microsoft.ManagedIdentity/userAssignedIdentities/ua",
        ] as [String?])
    func managedIdentity(identity: String?) async throws {
        let fake = try await FakeAzure.start()
        var fields: [String: Any] = ["useManagedIdentityExtension": true]
        if let identity { fields["userAssignedIdentityID"] = identity }
        let client = fake.client(try fake.configuration(fields))
        let vm = try await client.getVirtualMachine(
            VirtualMachineRef(resourceGroup: FakeAzure.group, name: "SOLO"))
        #expect(vm.name == "solo")
        #expect(vm.powerState == .running)
        #expect(try await fake.count("token_imds") == 1)
        #expect(try await fake.count("token_aad") == 0)
    }

    @Test("an unknown user-assigned identity is a fault")
    func unknownManagedIdentity() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(
            try fake.configuration([
                "useManagedIdentityExtension": true, "userAssignedIdentityID": "nobody",
            ]))
        let error = await cloudError { try await client.listScaleSets(FakeAzure.group) }
        #expect(error.map { if case .fault = $0 { true } else { false } } == true)
        #expect(try await fake.count("list_vmss") == 0)
    }

    @Test("workload identity sends the federated token and re-reads it at each renewal")
    func workloadIdentity() async throws {
        let fake = try await FakeAzure.start()
        let file = fake.directory.appendingPathComponent("federated-token")
        try "assertion-one\n".write(to: file, atomically: true, encoding: .utf8)
        let client = fake.client(
            try fake.configuration([
                "aadClientId": "wi-client", "useFederatedWorkloadIdentityExtension": true,
                "aadFederatedTokenFile": file.path,
            ]))
        _ = try await client.listScaleSets(FakeAzure.group)
        var credentials = try #require(FakeAzure.inventory["credentials"] as? [String: Any])
        credentials["workloadIdentities"] = [
            ["clientId": "wi-client", "assertions": ["assertion-two"]]
        ]
        try await fake.control("POST", "/_fake/config", ["credentials": credentials])
        try "assertion-two".write(to: file, atomically: true, encoding: .utf8)
        try await fake.control("POST", "/_fake/tokens/expire")
        _ = try await client.listScaleSets(FakeAzure.group)
        #expect(try await fake.count("token_aad") == 2)
        #expect(client.counters.tokenRenewals == 2)
    }

    @Test("a refused client secret is a fault whose message holds no secret")
    func wrongSecret() async throws {
        let fake = try await FakeAzure.start()
        let wrong = "wrong-secret-value-42"
        let configuration = try fake.configuration([
            "aadClientId": "client-1", "aadClientSecret": wrong,
        ])
        let client = fake.client(configuration)
        let error = await cloudError { try await client.listScaleSets(FakeAzure.group) }
        let text =
            "\(String(describing: error)) \(configuration) \(configuration.credential)"
            + String(reflecting: configuration)
        #expect(text.contains("invalid_client"))
        #expect(!text.contains(wrong))
        #expect(!text.contains(FakeAzure.secret))
    }

    @Test(
        "each ARM answer is sorted into the right CloudError",
        arguments: [
            (#"{"status": 404, "code": "ResourceNotFound"}"#, "gone"),
            (#"{"status": 404, "code": "ParentResourceNotFound"}"#, "gone"),
            (#"{"status": 404, "code": "ResourceGroupNotFound"}"#, "gone"),
            (#"{"status": 404, "code": "NotFound"}"#, "gone"),
            (#"{"status": 404, "code": "SubscriptionNotFound"}"#, "fault"),
            (#"{"status": 404, "code": "SomethingElse"}"#, "fault"),
            (#"{"status": 403, "code": "AuthorizationFailed"}"#, "fault"),
            (#"{"status": 400, "code": "BadRequest"}"#, "fault"),
            (#"{"status": 429, "retryAfter": 7}"#, "throttled"),
            (#"{"status": 500, "count": 10}"#, "transient"),
            (#"{"status": 503, "count": 10}"#, "transient"),
            (#"{"status": 408, "count": 10}"#, "transient"),
            (#"{"kind": "reset", "count": 10}"#, "transient"),
            (#"{"kind": "broken"}"#, "fault"),
            (#"{"kind": "body", "body": "<html>proxy</html>"}"#, "fault"),
            (
                #"{"kind": "body", "#
                    + #""body": "{\"value\":[],\"nextLink\":\"http://127.0.0.2:1/x\"}"}"#,
                "fault"
            ),
            (#"{"kind": "body", "status": 404, "body": "<html>not found</html>"}"#, "fault"),
        ])
    func classification(fault: String, expected: String) async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration(retries: 1))
        try await fake.inject(json: fault, operation: "list_vmss_vms")
        let error = await cloudError {
            try await client.listScaleSetVirtualMachines(FakeAzure.pool)
        }
        let kind: String
        switch error {
        case .gone?: kind = "gone"
        case .throttled(let until)?:
            kind = "throttled"
            #expect(abs(until - (Date().timeIntervalSince1970 + 7)) < 2)
        case .transient?: kind = "transient"
        case .fault?: kind = "fault"
        case nil: kind = "none"
        }
        #expect(kind == expected)
        let requests = try await fake.count("list_vmss_vms")
        #expect(client.counters.sent(.listScaleSetVMs) == (expected == "transient" ? 2 : 1))
        if fault.contains("reset") {
            // libcurl quietly reconnects once when a reused connection turns out dead.
            #expect(requests >= 2)
        } else {
            #expect(UInt64(requests) == client.counters.sent(.listScaleSetVMs))
        }
    }

    @Test("missing resources answer gone with ARM's own codes; a missing subscription is a fault")
    func realNotFound() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration())
        let other = ScaleSetRef(resourceGroup: FakeAzure.group, name: "absent")
        #expect(
            await cloudError { try await client.listScaleSetVirtualMachines(other) }
                == .gone(code: "ParentResourceNotFound"))
        let vm = VirtualMachineRef(resourceGroup: FakeAzure.group, name: "absent")
        #expect(
            await cloudError { try await client.getVirtualMachine(vm) }
                == .gone(code: "ResourceNotFound"))
        let group = ResourceGroupRef(subscriptionID: "sub-1", name: "absent")
        #expect(
            await cloudError { try await client.listScaleSets(group) }
                == .gone(code: "ResourceGroupNotFound"))
        let subscription = ResourceGroupRef(subscriptionID: "sub-9", name: "rg-1")
        let error = await cloudError { try await client.listScaleSets(subscription) }
        #expect(error.map { if case .fault = $0 { true } else { false } } == true)
    }

    @Test("transient failures are retried with backoff and then succeed")
    func transientRetried() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration(retries: 3))
        try await fake.inject(["operation": "list_vmss", "status": 503, "count": 2])
        #expect(try await client.listScaleSets(FakeAzure.group).count == 2)
        #expect(client.counters.count(.listScaleSets, .transient) == 2)
        #expect(client.counters.count(.listScaleSets, .ok) == 1)
    }

    @Test("a request that hangs past the timeout is transient")
    func timeout() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration(retries: 0, timeout: 0.5))
        try await fake.inject(["operation": "list_vmss", "kind": "hang", "seconds": 2])
        let error = await cloudError { try await client.listScaleSets(FakeAzure.group) }
        #expect(error.map { if case .transient = $0 { true } else { false } } == true)
    }

    @Test("during a 429 storm the gate lets exactly one request out until Retry-After passes")
    func throttleStorm() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration())
        try await fake.inject(["operation": "*", "status": 429, "retryAfter": 1, "count": 1000])
        let first = await cloudError {
            try await client.listScaleSetVirtualMachines(FakeAzure.pool)
        }
        guard case .throttled(let until)? = first else {
            Issue.record("expected throttled, got \(String(describing: first))")
            return
        }
        await withTaskGroup(of: CloudError?.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    await cloudError { try await client.listScaleSets(FakeAzure.group) }
                }
            }
            for await error in group { #expect(error == .throttled(until: until)) }
        }
        #expect(try await fake.count("list_vmss_vms") == 1)
        #expect(try await fake.count("list_vmss") == 0)
        #expect(client.counters.count(.listScaleSets, .throttledLocally) == 40)
        #expect((client.throttleGateState()["sub-1"] ?? 0) > 0)

        try await fake.control("DELETE", "/_fake/faults")
        try await Task.sleep(for: .seconds(max(0, until - Date().timeIntervalSince1970) + 0.05))
        #expect(try await client.listScaleSets(FakeAzure.group).count == 2)
        #expect(try await fake.count("list_vmss") == 1)
        #expect(client.throttleGateState()["sub-1"] == 0)
    }

    @Test("a 429 from an HTTP-date Retry-After throttles until that date")
    func httpDateRetryAfter() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration())
        try await fake.inject(["operation": "get_vm", "status": 429, "retryAfter": "date:20"])
        let vm = VirtualMachineRef(resourceGroup: FakeAzure.group, name: "solo")
        guard
            case .throttled(let until)? = await cloudError({
                try await client.getVirtualMachine(vm)
            })
        else {
            Issue.record("expected throttled")
            return
        }
        #expect(abs(until - (Date().timeIntervalSince1970 + 20)) < 2.5)
    }

    @Test("NIC reads give private addresses for scale set instances and standalone NICs")
    func nics() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration())
        let instance = ScaleSetInstanceRef(scaleSet: FakeAzure.pool, instanceID: "3")
        #expect(try await client.privateIPAddresses(of: instance) == ["10.240.0.7"])
        let solo = try await client.getVirtualMachine(
            VirtualMachineRef(resourceGroup: FakeAzure.group, name: "solo"))
        let nic = try #require(solo.primaryNetworkInterfaceID)
        #expect(try await client.privateIPAddresses(ofNetworkInterface: nic) == ["10.1.0.4"])
        let missing = ScaleSetInstanceRef(scaleSet: FakeAzure.pool, instanceID: "99")
        #expect(
            await cloudError { try await client.privateIPAddresses(of: missing) }
                == .gone(code: "ResourceNotFound"))
        let bad = await cloudError {
            try await client.privateIPAddresses(ofNetworkInterface: "../../etc")
        }
        #expect(bad.map { if case .fault = $0 { true } else { false } } == true)
    }

    @Test("deleting a scale set shows Deleting instances, then none, then ParentResourceNotFound")
    func scaleSetDeletion() async throws {
        let fake = try await FakeAzure.start(pageSize: 100)
        let client = fake.client(try fake.configuration())
        // Warm the token and the connection so the first listing lands inside the first phase.
        _ = try await client.listScaleSets(FakeAzure.group)
        let deleted = Date()
        try await fake.control(
            "DELETE", "/_fake/scalesets",
            ["subscription": "sub-1", "resourceGroup": "rg-1", "scaleSet": "pool", "delay": 3])
        let deleting = try await client.listScaleSetVirtualMachines(FakeAzure.pool)
        #expect(Date().timeIntervalSince(deleted) < 3, "first listing came too late to judge")
        #expect(deleting.count == 25)
        #expect(deleting.allSatisfy { $0.provisioningState == .deleting && $0.powerState == nil })

        // The later phases are polled for, in order, rather than timed: a busy machine may
        // reach each one later, never out of order.
        var listing = deleting
        while !listing.isEmpty && Date().timeIntervalSince(deleted) < 20 {
            #expect(listing.allSatisfy { $0.provisioningState == .deleting })
            try await Task.sleep(for: .milliseconds(200))
            listing = try await client.listScaleSetVirtualMachines(FakeAzure.pool)
        }
        #expect(listing.isEmpty, "the instances never went")
        var error: CloudError?
        while error == nil && Date().timeIntervalSince(deleted) < 30 {
            try await Task.sleep(for: .milliseconds(200))
            do throws(CloudError) {
                let left = try await client.listScaleSetVirtualMachines(FakeAzure.pool)
                #expect(left.isEmpty, "instances came back")
            } catch let failure {
                error = failure
            }
        }
        #expect(error == .gone(code: "ParentResourceNotFound"))
    }

    /// A first page with no items whose `nextLink` is `link` (`{base}` is the fake's address).
    func injectFirstPage(_ fake: FakeAzure, _ operation: String, link: String) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["value": [], "nextLink": link])
        try await fake.inject([
            "operation": operation, "count": 1, "kind": "body", "status": 200,
            "body": String(decoding: body, as: UTF8.self),
        ])
    }

    static let vmssPath =
        "{base}/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Compute/"
        + "virtualMachineScaleSets/"

    @Test(
        "a nextLink to another scale set's listing is a fault, never merged and never gone",
        arguments: ["flex", "absent", "pool/virtualMachines/3/networkInterfaces"])
    func nextLinkToAnotherPath(other: String) async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration())
        let link =
            Self.vmssPath + other + (other.contains("/") ? "" : "/virtualMachines")
            + "?$expand=instanceView&api-version=2024-07-01"
        try await injectFirstPage(fake, "list_vmss_vms", link: link)
        let error = await cloudError {
            try await client.listScaleSetVirtualMachines(FakeAzure.pool)
        }
        guard case .fault(let message)? = error else {
            Issue.record("expected a fault, got \(String(describing: error))")
            return
        }
        #expect(message.contains("nextLink"))
        #expect(try await fake.count("list_vmss_vms") == 1)
        #expect(try await fake.count("list_vmss_vm_nics") == 0)
    }

    @Test("a scale set listing's nextLink to another resource group is a fault")
    func scaleSetNextLinkToAnotherGroup() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration())
        try await injectFirstPage(
            fake, "list_vmss",
            link: "{base}/subscriptions/sub-1/resourceGroups/absent/providers/"
                + "Microsoft.Compute/virtualMachineScaleSets?api-version=2024-07-01")
        let error = await cloudError { try await client.listScaleSets(FakeAzure.group) }
        #expect(error.map { if case .fault = $0 { true } else { false } } == true)
        #expect(try await fake.count("list_vmss") == 1)
    }

    @Test("a nextLink differing only in casing, a trailing slash and its query is followed")
    func nextLinkSamePathFollowed() async throws {
        let fake = try await FakeAzure.start()
        let client = fake.client(try fake.configuration())
        try await injectFirstPage(
            fake, "list_vmss_vms",
            link: "{base}/SUBSCRIPTIONS/sub-1/resourcegroups/RG-1/providers/microsoft.compute/"
                + "virtualMachineScaleSets/POOL/virtualmachines/"
                + "?$expand=instanceView&api-version=2024-07-01&$skiptoken=20")
        let vms = try await client.listScaleSetVirtualMachines(FakeAzure.pool)
        #expect(Set(vms.compactMap(\.instanceID)) == Set((20..<25).map(String.init)))
        #expect(try await fake.count("list_vmss_vms") == 2)
    }

    @Test("a gone answer to a later page is transient, never gone for the listed resource")
    func goneOnLaterPage() async throws {
        let fake = try await FakeAzure.start(pageSize: 10)
        let client = fake.client(try fake.configuration(retries: 0))
        try await fake.inject([
            "operation": "list_vmss_vms", "status": 404, "code": "ResourceNotFound",
            "match": "skiptoken", "count": 1,
        ])
        let error = await cloudError {
            try await client.listScaleSetVirtualMachines(FakeAzure.pool)
        }
        guard case .transient(let message)? = error else {
            Issue.record("expected transient, got \(String(describing: error))")
            return
        }
        #expect(message.contains("page 2"))
        #expect(try await fake.count("list_vmss_vms") == 2)
        // The same 404 to the first page is still evidence of deletion.
        try await fake.inject([
            "operation": "list_vmss_vms", "status": 404, "code": "ResourceNotFound", "count": 1,
        ])
        #expect(
            await cloudError { try await client.listScaleSetVirtualMachines(FakeAzure.pool) }
                == .gone(code: "ResourceNotFound"))
    }
}
