import AzureARM
import AzureModel
import Foundation
import Testing

/// The published example bodies, read from the shared fixture folder.
enum Fixtures {
    /// The shared folder sits beside the checkout (`/work/main`) or beside the worktree folder.
    static let folder: URL = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let candidates = [
            root.deletingLastPathComponent(),
            root.deletingLastPathComponent().deletingLastPathComponent(),
        ].map { $0.appendingPathComponent("shared/fixtures/azure-rest-api-examples") }
        return candidates.first { FileManager.default.fileExists(atPath: $0.path) } ?? candidates[0]
    }()

    static let names = [
        "VirtualMachineScaleSetVM_List_MaximumSet_Gen.json",
        "VirtualMachineScaleSetVM_List_MinimumSet_Gen.json",
        "VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json",
        "VirtualMachine_Get.json",
        "VirtualMachine_Get_InstanceView.json",
        "VirtualMachineScaleSet_List_MaximumSet_Gen.json",
        "VmssVmNetworkInterfaceList.json",
    ]

    /// The `responses.200.body` of a fixture file, as bytes.
    static func body(_ name: String) throws -> [UInt8] {
        let data = try Data(contentsOf: folder.appendingPathComponent(name))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let responses = try #require(root["responses"] as? [String: Any])
        let ok = try #require(responses["200"] as? [String: Any])
        let body = try #require(ok["body"])
        return [UInt8](try JSONSerialization.data(withJSONObject: body))
    }
}

@Suite("ARM body decoding")
struct ARMDecoderTests {
    static let group = ResourceGroupRef(subscriptionID: "s", name: "g")

    @Test(
        "every published example decodes with every decoder without crashing",
        arguments: Fixtures.names)
    func everyFixtureEveryDecoder(name: String) throws {
        let body = try Fixtures.body(name)
        // Each decoder either answers or throws a decoding error; none may trap.
        _ = try? ARMDecoder.decodeVirtualMachinePage(body)
        _ = try? ARMDecoder.decodeVirtualMachine(body)
        _ = try? ARMDecoder.decodeScaleSetPage(body, resourceGroup: Self.group)
        _ = try? ARMDecoder.decodeNetworkInterfacePage(body)
        _ = try? ARMDecoder.decodeNetworkInterface(body)
        _ = ARMDecoder.decodeError(body)
        for cut in stride(from: 0, to: body.count, by: max(1, body.count / 97)) {
            #expect(throws: ARMDecodingError.self) {
                try ARMDecoder.decodeVirtualMachinePage(Array(body[..<cut]))
            }
        }
    }

    @Test("the maximal scale set VM example keeps its real fields and no placeholder power state")
    func maximumScaleSetVM() throws {
        let page = try ARMDecoder.decodeVirtualMachinePage(
            try Fixtures.body("VirtualMachineScaleSetVM_List_MaximumSet_Gen.json"))
        let vm = try #require(page.vms.first)
        #expect(page.vms.count == 1)
        #expect(page.nextLink == "a://example.com/aaaaaaaaaaaaaa")
        #expect(vm.instanceID == "aaaaaaaaaaaa")
        #expect(vm.location == "westus")
        #expect(vm.zones == ["a"])
        #expect(vm.vmSize == "Basic_A0")
        #expect(vm.computerName == "test000000")
        #expect(vm.provisioningState == .succeeded)
        #expect(vm.powerState == nil)
        #expect(vm.platformFaultDomain == 14)
        #expect(vm.primaryNetworkInterfaceID?.contains("/networkInterfaces/") == true)
    }

    @Test("a VM with only id and location decodes with nothing invented")
    func minimalScaleSetVM() throws {
        let page = try ARMDecoder.decodeVirtualMachinePage(
            try Fixtures.body("VirtualMachineScaleSetVM_List_MinimumSet_Gen.json"))
        let vm = try #require(page.vms.first)
        #expect(page.nextLink == nil)
        #expect(vm.instanceID == "0")
        #expect(vm.name == "0")
        #expect(vm.provisioningState == nil)
        #expect(vm.powerState == nil)
        #expect(vm.computerName == nil)
        #expect(vm.vmSize == nil)
        #expect(vm.zones.isEmpty)
    }

    @Test("an instance-view-only body gives the power state, fault domain and computer name")
    func instanceViewBodies() throws {
        let scaleSetView = try ARMDecoder.decodeVirtualMachine(
            try Fixtures.body(
                "VirtualMachineScaleSetVM_Get_InstanceViewAutoPlacedOnDedicatedHostGroup.json"))
        #expect(scaleSetView.powerState == .running)
        #expect(scaleSetView.provisioningState == .succeeded)
        #expect(scaleSetView.platformFaultDomain == 0)
        let vmView = try ARMDecoder.decodeVirtualMachine(
            try Fixtures.body("VirtualMachine_Get_InstanceView.json"))
        #expect(vmView.powerState == .running)
        #expect(vmView.platformFaultDomain == 1)
        #expect(vmView.computerName == "myVM")
    }

    @Test("a VM get without instance view has no power state")
    func vmGet() throws {
        let vm = try ARMDecoder.decodeVirtualMachine(try Fixtures.body("VirtualMachine_Get.json"))
        #expect(vm.name == "myVM")
        #expect(vm.location == "West US")
        #expect(vm.vmSize == "Standard_DS3_v2")
        #expect(vm.instanceID == nil)
        #expect(vm.powerState == nil)
        #expect(vm.provisioningState == .succeeded)
        #expect(
            vm.primaryNetworkInterfaceID?.contains("Microsoft.Network/networkInterfaces") == true)
    }

    @Test("scale set listings give names, orchestration mode and computer name prefix")
    func scaleSets() throws {
        let page = try ARMDecoder.decodeScaleSetPage(
            try Fixtures.body("VirtualMachineScaleSet_List_MaximumSet_Gen.json"),
            resourceGroup: Self.group)
        #expect(page.scaleSets.count == 2)
        #expect(page.scaleSets.first?.ref.resourceGroup == Self.group)
        #expect(page.scaleSets.first?.orchestrationMode == .uniform)
        #expect(page.nextLink == "aaaaaaaaaaaaaaaaaaa")
    }

    @Test("NIC listings give the primary private address first")
    func nics() throws {
        let page = try ARMDecoder.decodeNetworkInterfacePage(
            try Fixtures.body("VmssVmNetworkInterfaceList.json"))
        #expect(page.addresses == ["10.0.0.5"])
        #expect(page.nextLink == nil)
        let two = Array(
            #"""
            {"value":[{"properties":{"primary":false,"ipConfigurations":[
              {"properties":{"privateIPAddress":"10.1.0.9"}}]}},
             {"properties":{"primary":true,"ipConfigurations":[
              {"properties":{"privateIPAddress":"10.0.0.8","primary":false}},
              {"properties":{"privateIPAddress":"10.0.0.7","primary":true}}]}}]}
            """#.utf8)
        #expect(
            try ARMDecoder.decodeNetworkInterfacePage(two).addresses
                == ["10.0.0.7", "10.0.0.8", "10.1.0.9"])
    }

    @Test(
        "bodies that are not a list are refused rather than read as an empty list",
        arguments: [
            "", "{}", "[]", "null", #"{"value":null}"#, #"{"value":{}}"#, #"{"value":[1]}"#,
            #"{"value":[]} x"#, #"{"value":[{"id":"a"}"#, String(repeating: "[", count: 5000),
            #"{"value":[{"id":"\"#, #"{"value":[{"id":tru}]}"#,
        ])
    func refused(text: String) {
        #expect(throws: ARMDecodingError.self) {
            try ARMDecoder.decodeVirtualMachinePage(Array(text.utf8))
        }
    }

    @Test("values of the wrong kind, nulls and escapes read as absent or decoded, never a crash")
    func tolerant() throws {
        let text = #"""
            {"value":[{"id":"/s/x/virtualMachines/12","name":null,"zones":"1","sku":[],
              "properties":{"provisioningState":7,"osProfile":{"computerName":"n\u00e9\"1"},
              "instanceView":{"statuses":[null,{"code":null},{"code":"PowerState/deallocated"}],
              "platformFaultDomain":"2"}}}],"nextLink":null}
            """#
        let page = try ARMDecoder.decodeVirtualMachinePage(Array(text.utf8))
        let vm = try #require(page.vms.first)
        #expect(vm.instanceID == "12")
        #expect(vm.name == "12")
        #expect(vm.zones.isEmpty)
        #expect(vm.provisioningState == nil)
        #expect(vm.computerName == "né\"1")
        #expect(vm.powerState == .deallocated)
        #expect(vm.platformFaultDomain == nil)
        #expect(page.nextLink == nil)
    }

    @Test("error bodies give their code and message")
    func errors() {
        let body = Array(
            #"{"error":{"code":"ParentResourceNotFound","message":"gone","x":[1]}}"#.utf8)
        let decoded = ARMDecoder.decodeError(body)
        #expect(decoded?.code == "ParentResourceNotFound")
        #expect(decoded?.message == "gone")
        #expect(ARMDecoder.decodeError(Array("<html>".utf8)) == nil)
    }

    @Test("a page of 1000 VMs with full instance views decodes, and its time is reported")
    func thousandVMPage() throws {
        let body = SyntheticPage.thousandVMs()
        #expect(body.count > 2_000_000)
        var best = Double.infinity
        var decoded: [VirtualMachine] = []
        for _ in 0..<5 {
            let start = ContinuousClock.now
            decoded = try ARMDecoder.decodeVirtualMachinePage(body).vms
            let elapsed = ContinuousClock.now - start
            best = min(
                best,
                Double(elapsed.components.attoseconds) / 1e15
                    + Double(elapsed.components.seconds) * 1000)
        }
        print("decodeVirtualMachinePage: \(body.count) bytes, 1000 VMs, best \(best) ms")
        #expect(decoded.count == 1000)
        #expect(decoded[999].instanceID == "999")
        #expect(decoded[999].powerState == .running)
        #expect(decoded[999].computerName == "pool0000rr")
    }
}

/// A listing page shaped like the published example, with real values, about 2.5 KB per VM.
enum SyntheticPage {
    static func thousandVMs() -> [UInt8] {
        var out = #"{"value":["#
        for index in 0..<1000 {
            if index > 0 { out += "," }
            out += vm(index)
        }
        out += #"],"nextLink":"https://127.0.0.1/next?$skiptoken=1"}"#
        return Array(out.utf8)
    }

    static func vm(_ index: Int) -> String {
        let suffix = String(index, radix: 36)
        let name = "pool" + String(repeating: "0", count: 6 - suffix.count) + suffix
        let base =
            "/subscriptions/0000-1111/resourceGroups/rg/providers/Microsoft.Compute/"
            + "virtualMachineScaleSets/pool/virtualMachines/\(index)"
        let subnet =
            "/subscriptions/0000-1111/resourceGroups/net/providers/Microsoft.Network/"
            + "virtualNetworks/vnet/subnets/nodes"
        return #"""
            {"name":"pool_\#(index)","id":"\#(base)","type":"Microsoft.Compute/virtualMachines",
            "location":"westeurope","tags":{"aks-managed-poolName":"pool","createdBy":"tests"},
            "instanceId":"\#(index)","sku":{"name":"Standard_D4s_v5","tier":"Standard"},
            "zones":["\#(index % 3 + 1)"],"properties":{"latestModelApplied":true,
            "vmId":"8f0e1a2b-0000-4000-8000-\#(String(format: "%012d", index))",
            "hardwareProfile":{"vmSize":"Standard_D4s_v5"},"storageProfile":{"imageReference":{
            "publisher":"Canonical","offer":"0001-com-ubuntu-server-jammy","sku":"22_04-lts-gen2",
            "version":"latest","exactVersion":"22.04.202401010"},"osDisk":{"osType":"Linux",
            "name":"pool_\#(index)_OsDisk_1_abcdef0123456789","createOption":"FromImage",
            "caching":"ReadOnly","managedDisk":{"storageAccountType":"Premium_LRS","id":
            "\#(base)/disks/osdisk"},"diskSizeGB":128},"dataDisks":[]},"osProfile":{
            "computerName":"\#(name)","adminUsername":"azureuser","linuxConfiguration":{
            "disablePasswordAuthentication":true,"ssh":{"publicKeys":[{"path":
            "/home/azureuser/.ssh/authorized_keys",
            "keyData":"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAB\#(String(repeating: "Q", count: 300))"
            }]},
            "provisionVMAgent":true,"enableVMAgentPlatformUpdates":false},"secrets":[],
            "allowExtensionOperations":true,"requireGuestProvisionSignal":true},
            "networkProfile":{"networkInterfaces":[{"id":"\#(base)/networkInterfaces/pool-nic",
            "properties":{"primary":true}}]},"networkProfileConfiguration":{
            "networkInterfaceConfigurations":[{"name":"pool-nic","properties":{"primary":true,
            "enableAcceleratedNetworking":true,"ipConfigurations":[{"name":"ipconfig1",
            "properties":{"subnet":{"id":"\#(subnet)"},
            "privateIPAddressVersion":"IPv4"}}]}}]},"diagnosticsProfile":{"bootDiagnostics":{
            "enabled":true}},"provisioningState":"Succeeded","instanceView":{
            "platformUpdateDomain":\#(index % 5),"platformFaultDomain":\#(index % 3),
            "computerName":"\#(name)","osName":"ubuntu","osVersion":"22.04","vmAgent":{
            "vmAgentVersion":"2.9.1.1","statuses":[{"code":"ProvisioningState/succeeded",
            "level":"Info","displayStatus":"Ready","message":"Guest Agent is running",
            "time":"2024-05-01T10:00:00+00:00"}],"extensionHandlers":[{"type":
            "Microsoft.Azure.Extensions.CustomScript","typeHandlerVersion":"2.1.10","status":{
            "code":"ProvisioningState/succeeded","level":"Info","displayStatus":"Ready"}}]},
            "disks":[{"name":"pool_\#(index)_OsDisk_1_abcdef0123456789","statuses":[{"code":
            "ProvisioningState/succeeded","level":"Info","displayStatus":"Provisioning succeeded",
            "time":"2024-05-01T09:58:00.1234567+00:00"}]}],"extensions":[{"name":"vmssCSE",
            "type":"Microsoft.Azure.Extensions.CustomScript","typeHandlerVersion":"2.1.10",
            "statuses":[{"code":"ProvisioningState/succeeded","level":"Info","displayStatus":
            "Provisioning succeeded",
            "message":"Enable succeeded: \\n[stdout]\\nok\\n[stderr]\\n"}]}],
            "hyperVGeneration":"V2","statuses":[{"code":"ProvisioningState/succeeded",
            "level":"Info",
            "displayStatus":"Provisioning succeeded","time":"2024-05-01T10:00:00.1234567+00:00"},
            {"code":"PowerState/running","level":"Info","displayStatus":"VM running"}]},
            "timeCreated":"2024-05-01T09:57:00.1234567+00:00"}}
            """#
    }
}
