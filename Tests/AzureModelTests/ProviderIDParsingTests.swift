import AzureModel
import Testing

@Suite("Provider ID parsing")
struct ProviderIDParsingTests {
    static let instanceKey =
        "azure:///subscriptions/sub-1/resourcegroups/rg-a/providers/microsoft.compute/"
        + "virtualmachinescalesets/pool-1/virtualmachines/17"
    static let vmKey =
        "azure:///subscriptions/sub-1/resourcegroups/rg-a/providers/microsoft.compute/"
        + "virtualmachines/node-7"

    @Test(
        "every accepted form and casing reads to the same lower-cased key",
        arguments: [
            (
                "azure:///subscriptions/SUB-1/resourceGroups/RG-A/providers/Microsoft.Compute/"
                    + "virtualMachineScaleSets/Pool-1/virtualMachines/17", instanceKey
            ),
            (
                "azure:///subscriptions/sub-1/resourcegroups/rg-a/providers/microsoft.compute/"
                    + "virtualmachinescalesets/pool-1/virtualmachines/17", instanceKey
            ),
            (
                "AZURE:///SUBSCRIPTIONS/SUB-1/RESOURCEGROUPS/RG-A/PROVIDERS/MICROSOFT.COMPUTE/"
                    + "VIRTUALMACHINESCALESETS/POOL-1/VIRTUALMACHINES/17", instanceKey
            ),
            (
                "azure:///subscriptions/sub-1/resourceGroups/rg-a/providers/Microsoft.Compute/"
                    + "virtualMachineScaleSets/pool-1/virtualMachines/pool-1_17", instanceKey
            ),
            (
                "Azure:///subscriptions/sub-1/resourceGroups/rg-a/providers/Microsoft.Compute/"
                    + "virtualMachineScaleSets/pool-1/virtualMachines/POOL-1_17", instanceKey
            ),
            (
                "azure:///subscriptions/sub-1/resourceGroups/RG-A/providers/Microsoft.Compute/"
                    + "virtualMachines/Node-7", vmKey
            ),
            (
                "azure:///subscriptions/sub-1/resourcegroups/rg-a/providers/microsoft.compute/"
                    + "virtualmachines/node-7", vmKey
            ),
        ])
    func acceptedForms(text: String, key: String) throws {
        let id = try ProviderID(parsing: text)
        #expect(id.canonical == key)
        #expect(try ProviderID(parsing: id.canonical) == id)
    }

    @Test("a scale set instance keeps its parts lower-cased and its decimal instance ID")
    func scaleSetInstanceParts() throws {
        let id = try ProviderID(
            parsing: "azure:///subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/"
                + "virtualMachineScaleSets/VMSS/virtualMachines/vmss_42")
        guard case .scaleSetInstance(let instance) = id else {
            Issue.record("expected a scale set instance, got \(id)")
            return
        }
        #expect(instance.instanceID == "42")
        #expect(instance.scaleSet.name == "vmss")
        #expect(
            instance.scaleSet.resourceGroup == ResourceGroupRef(subscriptionID: "sub", name: "rg"))
    }

    @Test("an empty provider ID means the node is not initialised")
    func emptyID() throws {
        #expect(try ProviderID(parsing: "") == .empty)
        #expect(ProviderID.empty.canonical == "")
    }

    @Test(
        "IDs of other clouds are unmanaged and kept verbatim",
        arguments: [
            "kind://docker/kind/kind-worker", "aws:///us-east-1a/i-0abc", "gce://p/z/n", "azure:/x",
            "azure", " azure:///subscriptions/s",
        ])
    func unmanaged(text: String) throws {
        let id = try ProviderID(parsing: text)
        #expect(id == .unmanaged(text))
        #expect(id.canonical == text)
    }

    static let base = "azure:///subscriptions/s/resourceGroups/g/providers/"

    @Test(
        "malformed azure IDs are refused with a message saying what is wrong",
        arguments: [
            ("azure://subscriptions/s/resourceGroups/g", "three slashes"),
            ("azure:////subscriptions/s", "missing segment \"subscriptions\""),
            ("azure://", "three slashes"),
            ("azure:///", "missing segment \"subscriptions\""),
            ("azure:///subscriptions/s", "missing segment \"resourceGroups\""),
            ("azure:///subscriptions//resourceGroups/g", "empty segment: the subscription ID"),
            ("azure:///subscriptions/s/resourceGroups/g", "missing segment \"providers\""),
            (
                "azure:///subscriptions/s/resourceGroup/g/providers",
                "missing segment \"resourceGroups\""
            ),
            (
                "azure:///subscriptions/s/resourceGroups//providers",
                "empty segment: the resource group"
            ),
            (
                base + "Microsoft.Network/networkInterfaces/nic",
                "wrong resource type \"Microsoft.Network/networkInterfaces\""
            ),
            (base + "Microsoft.Compute/disks/d", "wrong resource type \"Microsoft.Compute/disks\""),
            (base + "Microsoft.Compute", "missing segment \"resource type\""),
            (base + "Microsoft.Compute/virtualMachines", "missing segment \"VM name\""),
            (base + "Microsoft.Compute/virtualMachines/", "empty segment: the VM name"),
            (base + "Microsoft.Compute/virtualMachines/vm/extra", "trailing junk \"extra\""),
            (base + "Microsoft.Compute/virtualMachines/vm/", "a trailing slash"),
            (
                base + "Microsoft.Compute/virtualMachineScaleSets/ss",
                "missing segment \"virtualMachines\""
            ),
            (
                base + "Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines",
                "missing segment \"instance ID\""
            ),
            (
                base + "Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/abc",
                "bad instance ID \"abc\""
            ),
            (
                base + "Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/",
                "empty segment: the instance ID"
            ),
            (
                base + "Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/other_3",
                "bad instance ID \"other_3\""
            ),
            (
                base + "Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/ss_",
                "bad instance ID \"ss_\""
            ),
            (
                base + "Microsoft.Compute/virtualMachineScaleSets/ss/nics/3",
                "missing segment \"virtualMachines\""
            ),
            (
                base + "Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/3/x",
                "trailing junk \"x\""
            ),
            (
                base + "Microsoft.Compute/virtualMachineScaleSets//virtualMachines/3",
                "empty segment: the scale set name"
            ),
            (base + "Microsoft.Compute/virtualMachines/vm?x=1", "character"),
            (base + "Microsoft.Compute/virtualMachines/v m", "character"),
            (
                base + "Microsoft.Compute/virtualMachines/" + String(repeating: "x", count: 3000),
                "at most 2048"
            ),
        ])
    func malformed(text: String, expected: String) {
        do {
            let id = try ProviderID(parsing: text)
            Issue.record("accepted \(text) as \(id)")
        } catch {
            #expect(error.message.contains(expected), "message was: \(error.message)")
        }
    }

    @Test("a hostile provider ID cannot put control characters or megabytes into the message")
    func hostileMessage() {
        let text =
            Self.base + "Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/"
            + "\u{1b}[31m" + String(repeating: "9", count: 500)
        do {
            _ = try ProviderID(parsing: text)
            Issue.record("accepted a hostile ID")
        } catch {
            #expect(!error.message.contains("\u{1b}"))
            #expect(error.message.utf8.count < 600)
        }
    }
}
