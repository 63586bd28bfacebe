import AzureModel
import Testing
import VMSSCache

@Suite("Shutdown and metadata")
struct ShutdownAndMetadataTests {
    struct PowerCase: Sendable, CustomTestStringConvertible {
        let provisioning: ProvisioningState?
        let power: PowerState?
        let shutDown: Bool

        var testDescription: String {
            let provisioning = self.provisioning.map { "\($0)" } ?? "nil"
            let power = self.power.map { "\($0)" } ?? "nil"
            return "\(provisioning)/\(power) -> \(shutDown)"
        }
    }

    static let powerCases: [PowerCase] = [
        PowerCase(provisioning: .succeeded, power: .stopped, shutDown: true),
        PowerCase(provisioning: .succeeded, power: .deallocated, shutDown: true),
        PowerCase(provisioning: .succeeded, power: .deallocating, shutDown: true),
        PowerCase(provisioning: .succeeded, power: .running, shutDown: false),
        PowerCase(provisioning: .succeeded, power: .starting, shutDown: false),
        PowerCase(provisioning: .succeeded, power: .other, shutDown: false),
        PowerCase(provisioning: .succeeded, power: nil, shutDown: false),
        PowerCase(provisioning: .updating, power: .stopped, shutDown: false),
        PowerCase(provisioning: .deleting, power: nil, shutDown: false),
        PowerCase(provisioning: .failed, power: .deallocated, shutDown: false),
        PowerCase(provisioning: nil, power: .stopped, shutDown: false),
    ]

    @Test(
        "shutdown is true only for a succeeded VM that is stopped or deallocated",
        arguments: powerCases)
    func shutdownTable(case row: PowerCase) async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        let ref = VirtualMachineRef(resourceGroup: group, name: "vm-a")
        fixture.backend.update {
            $0.scaleSets[pool] = [instanceVM(1, provisioning: row.provisioning, power: row.power)]
            $0.machines[ref] = VirtualMachine(
                name: "vm-a", provisioningState: row.provisioning, powerState: row.power)
        }

        let (instance, _) = await fixture.cache.instanceShutdown(node(pool, 1))
        let (standalone, _) = await fixture.cache.instanceShutdown(machine("vm-a"))

        #expect(instance == .success(row.shutDown))
        #expect(standalone == .success(row.shutDown))
        #expect(fixture.backend.totalCalls == 2)
    }

    @Test("a missing, deleted, unmanaged or uninitialised node is not shut down")
    func shutdownOfMissing() async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1)] }

        let missing = await fixture.cache.instanceShutdown(node(pool, 2)).0
        let deleted = await fixture.cache.instanceShutdown(node(scaleSet("gone"), 2)).0
        let unmanaged = await fixture.cache.instanceShutdown(
            NodeQuestion(providerID: .unmanaged("aws:///x"))
        ).0
        let empty = await fixture.cache.instanceShutdown(NodeQuestion(providerID: .empty)).0

        #expect(
            [missing, deleted, unmanaged, empty] == Array(repeating: .success(false), count: 4))
        #expect(fixture.backend.calls(.listVMs) == 2)
    }

    @Test("metadata reports size, zone, region and addresses, reading the IPs once")
    func instanceMetadata() async {
        let fixture = Fixture()
        let pool = scaleSet("Pool")
        let instance = ScaleSetInstanceRef(scaleSet: pool, instanceID: "3")
        fixture.backend.update {
            $0.scaleSets[pool] = [instanceVM(3, prefix: "pool", zones: ["2"])]
            $0.instanceIPs[instance] = ["10.0.0.7", "10.0.1.7"]
        }

        let (exists, _) = await fixture.exists(node(pool, 3))
        let ipCallsBefore = fixture.backend.calls(.instanceIPs)
        let (first, firstInfo) = await fixture.cache.instanceMetadata(node(pool, 3))
        let (second, secondInfo) = await fixture.cache.instanceMetadata(node(pool, 3))

        #expect(exists == .success(true))
        #expect(ipCallsBefore == 0)
        let expected = InstanceMetadata(
            providerID: "azure:///subscriptions/sub-1/resourceGroups/rg-nodes/providers/"
                + "Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/3",
            instanceType: "Standard_D2s_v3",
            addresses: [
                NodeAddress(type: "Hostname", address: "pool000003"),
                NodeAddress(type: "InternalIP", address: "10.0.0.7"),
                NodeAddress(type: "InternalIP", address: "10.0.1.7"),
            ],
            zone: "eastus-2",
            region: "eastus"
        )
        #expect(first == .success(expected))
        #expect(second == .success(expected))
        #expect(firstInfo == AnswerInfo(outcome: .miss, backendCalls: 1))
        #expect(secondInfo == AnswerInfo(outcome: .hit, backendCalls: 0))
        #expect(fixture.backend.calls(.instanceIPs) == 1)
        #expect(fixture.backend.calls(.listVMs) == 1)
    }

    @Test("without a zone the fault domain is the zone; with neither the zone is empty")
    func faultDomainZone() async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        fixture.backend.update {
            $0.scaleSets[pool] = [instanceVM(1, faultDomain: 2), instanceVM(2)]
            $0.instanceIPs[ScaleSetInstanceRef(scaleSet: pool, instanceID: "1")] = ["10.0.0.1"]
            $0.instanceIPs[ScaleSetInstanceRef(scaleSet: pool, instanceID: "2")] = ["10.0.0.2"]
        }

        let withFaultDomain = await fixture.cache.instanceMetadata(node(pool, 1)).0.value
        let withNeither = await fixture.cache.instanceMetadata(node(pool, 2)).0.value

        #expect(withFaultDomain?.zone == "2")
        #expect(withNeither?.zone == "")
        #expect(withNeither?.region == "eastus")
    }

    @Test("standalone VM metadata reads its primary NIC's IPs once")
    func standaloneMetadata() async {
        let fixture = Fixture()
        let ref = VirtualMachineRef(resourceGroup: group, name: "VM-A")
        let nic =
            "/subscriptions/sub-1/resourceGroups/rg-nodes/providers/Microsoft.Network/"
            + "networkInterfaces/nic-a"
        fixture.backend.update {
            $0.machines[ref] = VirtualMachine(
                name: "VM-A", computerName: "vm-a", location: "West Europe", zones: ["1"],
                vmSize: "Standard_B2s", provisioningState: .succeeded, powerState: .running,
                primaryNetworkInterfaceID: nic)
            $0.interfaceIPs[nic] = ["192.168.0.4"]
        }

        let first = await fixture.cache.instanceMetadata(machine("VM-A")).0
        let second = await fixture.cache.instanceMetadata(machine("vm-a")).0

        let expected = InstanceMetadata(
            providerID: "azure:///subscriptions/sub-1/resourceGroups/rg-nodes/providers/"
                + "Microsoft.Compute/virtualMachines/vm-a",
            instanceType: "Standard_B2s",
            addresses: [
                NodeAddress(type: "Hostname", address: "vm-a"),
                NodeAddress(type: "InternalIP", address: "192.168.0.4"),
            ],
            zone: "westeurope-1",
            region: "westeurope"
        )
        #expect(first == .success(expected))
        #expect(second == .success(expected))
        #expect(fixture.backend.calls(.getVM) == 1)
        #expect(fixture.backend.calls(.interfaceIPs) == 1)
    }

    @Test("metadata of a missing instance is not found, and an IP read failure is unavailable")
    func metadataFailures() async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1)] }

        let missing = await fixture.cache.instanceMetadata(node(pool, 4)).0
        let deleted = await fixture.cache.instanceMetadata(node(scaleSet("gone"), 4)).0
        fixture.backend.update { $0.failure = .transient("HTTP 502") }
        let ipFailure = await fixture.cache.instanceMetadata(node(pool, 1)).0

        guard case .failure(.notFound) = missing, case .failure(.notFound) = deleted,
            case .failure(.unavailable) = ipFailure
        else {
            Issue.record("got \(missing), \(deleted), \(ipFailure)")
            return
        }
        #expect(fixture.backend.calls(.instanceIPs) == 1)
    }
}

@Suite("Node-name lookups")
struct NameLookupTests {
    static func uniform(_ name: String, prefix: String) -> ScaleSetSummary {
        ScaleSetSummary(
            ref: scaleSet(name), orchestrationMode: .uniform, computerNamePrefix: prefix)
    }

    func fixture() -> Fixture {
        let fixture = Fixture()
        fixture.backend.update {
            $0.summaries[group] = [
                Self.uniform("pool", prefix: "aks-pool-vmss"),
                Self.uniform("poolx", prefix: "aks-pool-vmssx"),
                ScaleSetSummary(
                    ref: scaleSet("flex"), orchestrationMode: .flexible,
                    computerNamePrefix: "flex"),
            ]
            $0.scaleSets[scaleSet("pool")] = [instanceVM(10, prefix: "aks-pool-vmss")]
            $0.scaleSets[scaleSet("poolx")] = [instanceVM(1, prefix: "aks-pool-vmssx")]
            $0.machines[VirtualMachineRef(resourceGroup: group, name: "flex_abc123")] =
                VirtualMachine(
                    name: "flex_abc123", computerName: "flex_abc123", provisioningState: .succeeded)
        }
        return fixture
    }

    func named(_ name: String) -> NodeQuestion {
        NodeQuestion(providerID: .empty, nodeName: name)
    }

    @Test("a uniform node is found by computer-name prefix and six base-36 digits")
    func uniformByPrefix() async {
        let fixture = fixture()
        fixture.backend.update {
            $0.instanceIPs[ScaleSetInstanceRef(scaleSet: scaleSet("pool"), instanceID: "10")] = [
                "10.1.0.10"
            ]
        }

        let exists = await fixture.exists(named("AKS-Pool-VMSS00000A")).0
        let longestPrefix = await fixture.exists(named("aks-pool-vmssx000001")).0
        let metadata = await fixture.cache.instanceMetadata(named("aks-pool-vmss00000a")).0.value

        #expect(exists == .success(true))
        #expect(longestPrefix == .success(true))
        #expect(
            metadata?.providerID.hasSuffix("/virtualMachineScaleSets/pool/virtualMachines/10")
                == true)
        #expect(fixture.backend.calls(.listScaleSets) == 1)
        #expect(fixture.backend.calls(.listVMs) == 2)
        #expect(fixture.backend.calls(.getVM) == 0)
    }

    @Test("a name that is no uniform instance is looked up as a standalone or Flex VM")
    func standaloneByName() async {
        let fixture = fixture()

        let flex = await fixture.exists(named("flex_abc123")).0
        let gone = await fixture.exists(named("no-such-node")).0
        let goneMetadata = await fixture.cache.instanceMetadata(named("no-such-node")).0

        #expect(flex == .success(true))
        #expect(gone == .success(false))
        guard case .failure(.notFound) = goneMetadata else {
            Issue.record("expected notFound, got \(goneMetadata)")
            return
        }
        #expect(fixture.backend.calls(.getVM) == 2)
        #expect(fixture.backend.calls(.listScaleSets) == 1)
    }

    @Test("a uniform name missing from a fresh listing of its scale set does not exist")
    func uniformMissing() async {
        let fixture = fixture()

        let missing = await fixture.exists(named("aks-pool-vmss000zzz")).0

        #expect(missing == .success(false))
        #expect(fixture.backend.calls(.listVMs) == 1)
        #expect(fixture.backend.calls(.getVM) == 0)
    }

    @Test("a lookup while the scale-set list cannot be read is unavailable, not false")
    func lookupFailure() async {
        let fixture = fixture()
        fixture.backend.update { $0.failure = .throttled(until: fixture.clock.now + 12) }

        let verdict = await fixture.exists(named("aks-pool-vmss00000a")).0

        #expect(
            verdict
                == .failure(
                    .unavailable(
                        "listing scale sets of sub-1/rg-nodes: Azure is throttling reads",
                        retryAfterSeconds: 12)))
        #expect(fixture.backend.totalCalls == 1)
    }
}
