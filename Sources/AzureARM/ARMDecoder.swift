import AzureModel
import Foundation

/// Reads ARM response bodies into the model's records, taking only the fields the verdicts and
/// metadata answers use. Unknown, missing and null fields are tolerated; a value of the wrong
/// kind reads as absent. Placeholder values are never turned into answers: a status code that is
/// not `PowerState/...` leaves the power state `nil`.
public enum ARMDecoder {
    /// Reads one page of a VM listing (`{"value": [...], "nextLink": ...}`).
    /// - Parameter scaleSetInstances: true for a scale set's VM listing, where a VM without
    ///   `instanceId` takes its instance ID from the last segment of its `id`.
    /// - Throws: `ARMDecodingError` when the body is not JSON or has no `value` array.
    public static func decodeVirtualMachinePage(
        _ bytes: [UInt8], scaleSetInstances: Bool = true
    ) throws(ARMDecodingError) -> (vms: [VirtualMachine], nextLink: String?) {
        try withBytes(bytes) { (scanner: inout JSONScanner) throws(ARMDecodingError) in
            var vms: [VirtualMachine] = []
            let nextLink = try readPage(&scanner) {
                (scanner: inout JSONScanner) throws(ARMDecodingError) in
                vms.append(try readVirtualMachine(&scanner, scaleSetInstance: scaleSetInstances))
            }
            return (vms, nextLink)
        }
    }

    /// `decodeVirtualMachinePage` for a body held in `Data`.
    public static func decodeVirtualMachinePage(
        _ data: Data, scaleSetInstances: Bool = true
    ) throws(ARMDecodingError) -> (vms: [VirtualMachine], nextLink: String?) {
        try decodeVirtualMachinePage([UInt8](data), scaleSetInstances: scaleSetInstances)
    }

    /// Reads one VM resource, or a body that is only an instance view (`statuses`,
    /// `computerName`, `platformFaultDomain` at the top level).
    /// - Throws: `ARMDecodingError` when the body is not a JSON object.
    public static func decodeVirtualMachine(
        _ bytes: [UInt8], scaleSetInstance: Bool = false
    ) throws(ARMDecodingError) -> VirtualMachine {
        try withBytes(bytes) { (scanner: inout JSONScanner) throws(ARMDecodingError) in
            try readVirtualMachine(&scanner, scaleSetInstance: scaleSetInstance)
        }
    }

    /// Reads one page of a resource group's scale set listing.
    /// - Parameter resourceGroup: the group that was listed, which every summary belongs to.
    public static func decodeScaleSetPage(
        _ bytes: [UInt8], resourceGroup: ResourceGroupRef
    ) throws(ARMDecodingError) -> (scaleSets: [ScaleSetSummary], nextLink: String?) {
        try withBytes(bytes) { (scanner: inout JSONScanner) throws(ARMDecodingError) in
            var sets: [ScaleSetSummary] = []
            let nextLink = try readPage(&scanner) {
                (scanner: inout JSONScanner) throws(ARMDecodingError) in
                if let summary = try readScaleSet(&scanner, resourceGroup: resourceGroup) {
                    sets.append(summary)
                }
            }
            return (sets, nextLink)
        }
    }

    /// Reads a NIC listing page into private IP addresses, primary NIC first and, within each NIC,
    /// primary IP configuration first.
    public static func decodeNetworkInterfacePage(
        _ bytes: [UInt8]
    ) throws(ARMDecodingError) -> (addresses: [String], nextLink: String?) {
        try withBytes(bytes) { (scanner: inout JSONScanner) throws(ARMDecodingError) in
            var nics: [(primary: Bool, addresses: [String])] = []
            let nextLink = try readPage(&scanner) {
                (scanner: inout JSONScanner) throws(ARMDecodingError) in
                nics.append(try readNetworkInterface(&scanner))
            }
            return (orderedAddresses(nics), nextLink)
        }
    }

    /// Reads one NIC resource into its private IP addresses, primary first.
    public static func decodeNetworkInterface(_ bytes: [UInt8]) throws(ARMDecodingError) -> [String]
    {
        try withBytes(bytes) { (scanner: inout JSONScanner) throws(ARMDecodingError) in
            orderedAddresses([try readNetworkInterface(&scanner)])
        }
    }

    /// Reads an ARM error body `{"error": {"code", "message"}}`; nil when it is not one.
    public static func decodeError(_ bytes: [UInt8]) -> (code: String, message: String)? {
        try? withBytes(bytes) { (scanner: inout JSONScanner) throws(ARMDecodingError) in
            var code: String?
            var message = ""
            guard try scanner.beginObject() else { return nil }
            while let key = try scanner.nextKey() {
                guard scanner.key(key, is: "error"), try scanner.beginObject() else {
                    try scanner.skipValue()
                    continue
                }
                while let inner = try scanner.nextKey() {
                    if scanner.key(inner, is: "code") {
                        code = try scanner.stringOrNil()
                    } else if scanner.key(inner, is: "message") {
                        message = try scanner.stringOrNil() ?? ""
                    } else {
                        try scanner.skipValue()
                    }
                }
            }
            return code.map { ($0, message) }
        } ?? nil
    }

    // MARK: - Shapes

    private static func withBytes<T>(
        _ bytes: [UInt8], _ body: (inout JSONScanner) throws(ARMDecodingError) -> T
    ) throws(ARMDecodingError) -> T {
        let result: Result<T, ARMDecodingError> = bytes.withUnsafeBytes { raw in
            var scanner = JSONScanner(raw)
            do throws(ARMDecodingError) {
                let value = try body(&scanner)
                try scanner.finish()
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Reads `{"value": [...], "nextLink": ...}`, handing each element of `value` to `element`.
    private static func readPage(
        _ scanner: inout JSONScanner,
        element: (inout JSONScanner) throws(ARMDecodingError) -> Void
    ) throws(ARMDecodingError) -> String? {
        guard try scanner.beginObject() else {
            throw ARMDecodingError("list body is not a JSON object")
        }
        var sawValue = false
        var nextLink: String?
        while let key = try scanner.nextKey() {
            if scanner.key(key, is: "value") {
                guard try scanner.beginArray() else {
                    throw ARMDecodingError("list body's \"value\" is not an array")
                }
                sawValue = true
                while try scanner.nextElement() {
                    try element(&scanner)
                }
            } else if scanner.key(key, is: "nextLink") {
                nextLink = try scanner.stringOrNil()
            } else {
                try scanner.skipValue()
            }
        }
        // An answer without `value` must not read as "no VMs": that would say every one is gone.
        guard sawValue else { throw ARMDecodingError("list body has no \"value\" array") }
        return nextLink.flatMap { $0.isEmpty ? nil : $0 }
    }

    private struct InstanceView {
        var powerState: PowerState?
        var provisioningState: ProvisioningState?
        var computerName: String?
        var platformFaultDomain: Int?
    }

    private static func readVirtualMachine(
        _ scanner: inout JSONScanner, scaleSetInstance: Bool
    ) throws(ARMDecodingError) -> VirtualMachine {
        guard try scanner.beginObject() else {
            throw ARMDecodingError("a VM is not a JSON object")
        }
        var id: String?
        var name: String?
        var instanceID: String?
        var vm = VirtualMachine(name: "")
        var skuName: String?
        var topView = InstanceView()
        var view = InstanceView()
        while let key = try scanner.nextKey() {
            if scanner.key(key, is: "id") {
                id = try scanner.stringOrNil()
            } else if scanner.key(key, is: "name") {
                name = try scanner.stringOrNil()
            } else if scanner.key(key, is: "instanceId") {
                instanceID = try scanner.stringOrNil()
            } else if scanner.key(key, is: "location") {
                vm.location = try scanner.stringOrNil()
            } else if scanner.key(key, is: "zones") {
                vm.zones = try readStrings(&scanner)
            } else if scanner.key(key, is: "sku") {
                skuName = try readMember(&scanner, "name")
            } else if scanner.key(key, is: "properties") {
                try readVMProperties(&scanner, into: &vm, view: &view)
            } else if try !readInstanceViewMember(&scanner, key: key, into: &topView) {
                try scanner.skipValue()
            }
        }
        vm.name = name ?? id.map { lastSegment(of: $0) } ?? ""
        if scaleSetInstance {
            vm.instanceID = instanceID ?? id.map { lastSegment(of: $0) }
        }
        if vm.vmSize == nil { vm.vmSize = skuName }
        vm.powerState = view.powerState ?? topView.powerState
        vm.computerName = vm.computerName ?? view.computerName ?? topView.computerName
        vm.platformFaultDomain = view.platformFaultDomain ?? topView.platformFaultDomain
        vm.provisioningState =
            vm.provisioningState ?? view.provisioningState ?? topView.provisioningState
        return vm
    }

    private static func readVMProperties(
        _ scanner: inout JSONScanner, into vm: inout VirtualMachine, view: inout InstanceView
    ) throws(ARMDecodingError) {
        guard try scanner.beginObject() else { return }
        while let key = try scanner.nextKey() {
            if scanner.key(key, is: "provisioningState") {
                vm.provisioningState = try scanner.stringOrNil().map(
                    ProvisioningState.init(armValue:))
            } else if scanner.key(key, is: "osProfile") {
                vm.computerName = try readMember(&scanner, "computerName")
            } else if scanner.key(key, is: "hardwareProfile") {
                vm.vmSize = try readMember(&scanner, "vmSize")
            } else if scanner.key(key, is: "networkProfile") {
                vm.primaryNetworkInterfaceID = try readNetworkProfile(&scanner)
            } else if scanner.key(key, is: "instanceView") {
                guard try scanner.beginObject() else { continue }
                while let inner = try scanner.nextKey() {
                    if try !readInstanceViewMember(&scanner, key: inner, into: &view) {
                        try scanner.skipValue()
                    }
                }
            } else {
                try scanner.skipValue()
            }
        }
    }

    /// Reads one instance-view member when it is one this program uses; false when not.
    private static func readInstanceViewMember(
        _ scanner: inout JSONScanner, key: JSONScanner.Key, into view: inout InstanceView
    ) throws(ARMDecodingError) -> Bool {
        if scanner.key(key, is: "statuses") {
            guard try scanner.beginArray() else { return true }
            while try scanner.nextElement() {
                guard let code = try readMember(&scanner, "code") else { continue }
                if let power = PowerState(statusCode: code) {
                    view.powerState = power
                } else if let state = provisioningState(statusCode: code) {
                    view.provisioningState = state
                }
            }
        } else if scanner.key(key, is: "computerName") {
            view.computerName = try scanner.stringOrNil()
        } else if scanner.key(key, is: "platformFaultDomain") {
            view.platformFaultDomain = try scanner.intOrNil()
        } else {
            return false
        }
        return true
    }

    /// `ProvisioningState/succeeded` (or `ProvisioningState/failed/Reason`) into a state.
    private static func provisioningState(statusCode: String) -> ProvisioningState? {
        let prefix = "provisioningstate/"
        let lowered = statusCode.lowercased()
        guard lowered.hasPrefix(prefix) else { return nil }
        let rest = lowered.dropFirst(prefix.count).split(separator: "/").first ?? ""
        let state = ProvisioningState(armValue: String(rest))
        return state == .other ? nil : state
    }

    /// The primary NIC's ID, else the first NIC's.
    private static func readNetworkProfile(
        _ scanner: inout JSONScanner
    ) throws(ARMDecodingError) -> String? {
        var first: String?
        var primary: String?
        guard try scanner.beginObject() else { return nil }
        while let key = try scanner.nextKey() {
            guard scanner.key(key, is: "networkInterfaces"), try scanner.beginArray() else {
                try scanner.skipValue()
                continue
            }
            while try scanner.nextElement() {
                guard try scanner.beginObject() else { continue }
                var id: String?
                var isPrimary = false
                while let member = try scanner.nextKey() {
                    if scanner.key(member, is: "id") {
                        id = try scanner.stringOrNil()
                    } else if scanner.key(member, is: "properties") {
                        isPrimary = try readMember(&scanner, "primary", as: Bool.self) ?? false
                    } else {
                        try scanner.skipValue()
                    }
                }
                if first == nil { first = id }
                if isPrimary, primary == nil { primary = id }
            }
        }
        return primary ?? first
    }

    private static func readScaleSet(
        _ scanner: inout JSONScanner, resourceGroup: ResourceGroupRef
    ) throws(ARMDecodingError) -> ScaleSetSummary? {
        guard try scanner.beginObject() else {
            throw ARMDecodingError("a scale set is not a JSON object")
        }
        var id: String?
        var name: String?
        var mode = OrchestrationMode.uniform
        var prefix: String?
        while let key = try scanner.nextKey() {
            if scanner.key(key, is: "id") {
                id = try scanner.stringOrNil()
            } else if scanner.key(key, is: "name") {
                name = try scanner.stringOrNil()
            } else if scanner.key(key, is: "properties"), try scanner.beginObject() {
                while let member = try scanner.nextKey() {
                    if scanner.key(member, is: "orchestrationMode") {
                        let text = try scanner.stringOrNil()?.lowercased()
                        mode = text == "flexible" ? .flexible : .uniform
                    } else if scanner.key(member, is: "virtualMachineProfile"),
                        try scanner.beginObject()
                    {
                        while let profileKey = try scanner.nextKey() {
                            if scanner.key(profileKey, is: "osProfile") {
                                prefix = try readMember(&scanner, "computerNamePrefix")
                            } else {
                                try scanner.skipValue()
                            }
                        }
                    } else {
                        try scanner.skipValue()
                    }
                }
            } else {
                try scanner.skipValue()
            }
        }
        guard let setName = name ?? id.map({ lastSegment(of: $0) }), !setName.isEmpty else {
            return nil
        }
        return ScaleSetSummary(
            ref: ScaleSetRef(resourceGroup: resourceGroup, name: setName),
            orchestrationMode: mode, computerNamePrefix: prefix)
    }

    private static func readNetworkInterface(
        _ scanner: inout JSONScanner
    ) throws(ARMDecodingError) -> (primary: Bool, addresses: [String]) {
        guard try scanner.beginObject() else {
            throw ARMDecodingError("a network interface is not a JSON object")
        }
        var nicPrimary = false
        var configurations: [(primary: Bool, address: String)] = []
        while let key = try scanner.nextKey() {
            guard scanner.key(key, is: "properties"), try scanner.beginObject() else {
                try scanner.skipValue()
                continue
            }
            while let member = try scanner.nextKey() {
                if scanner.key(member, is: "primary") {
                    nicPrimary = try scanner.boolOrNil() ?? false
                } else if scanner.key(member, is: "ipConfigurations"), try scanner.beginArray() {
                    while try scanner.nextElement() {
                        if let configuration = try readIPConfiguration(&scanner) {
                            configurations.append(configuration)
                        }
                    }
                } else {
                    try scanner.skipValue()
                }
            }
        }
        let ordered = configurations.filter(\.primary) + configurations.filter { !$0.primary }
        return (nicPrimary, ordered.map(\.address))
    }

    private static func readIPConfiguration(
        _ scanner: inout JSONScanner
    ) throws(ARMDecodingError) -> (primary: Bool, address: String)? {
        guard try scanner.beginObject() else { return nil }
        var primary = false
        var address: String?
        while let key = try scanner.nextKey() {
            guard scanner.key(key, is: "properties"), try scanner.beginObject() else {
                try scanner.skipValue()
                continue
            }
            while let member = try scanner.nextKey() {
                if scanner.key(member, is: "privateIPAddress") {
                    address = try scanner.stringOrNil()
                } else if scanner.key(member, is: "primary") {
                    primary = try scanner.boolOrNil() ?? false
                } else {
                    try scanner.skipValue()
                }
            }
        }
        return address.map { (primary, $0) }
    }

    private static func orderedAddresses(_ nics: [(primary: Bool, addresses: [String])]) -> [String]
    {
        (nics.filter(\.primary) + nics.filter { !$0.primary }).flatMap(\.addresses)
    }

    /// Reads one string member of an object value, skipping everything else in it.
    private static func readMember(
        _ scanner: inout JSONScanner, _ name: StaticString
    ) throws(ARMDecodingError) -> String? {
        guard try scanner.beginObject() else { return nil }
        var value: String?
        while let key = try scanner.nextKey() {
            if scanner.key(key, is: name) {
                value = try scanner.stringOrNil()
            } else {
                try scanner.skipValue()
            }
        }
        return value
    }

    private static func readMember(
        _ scanner: inout JSONScanner, _ name: StaticString, as: Bool.Type
    ) throws(ARMDecodingError) -> Bool? {
        guard try scanner.beginObject() else { return nil }
        var value: Bool?
        while let key = try scanner.nextKey() {
            if scanner.key(key, is: name) {
                value = try scanner.boolOrNil()
            } else {
                try scanner.skipValue()
            }
        }
        return value
    }

    private static func readStrings(
        _ scanner: inout JSONScanner
    ) throws(ARMDecodingError) -> [String] {
        guard try scanner.beginArray() else { return [] }
        var values: [String] = []
        while try scanner.nextElement() {
            if let value = try scanner.stringOrNil() { values.append(value) }
        }
        return values
    }

    static func lastSegment(of id: String) -> String {
        String(id.split(separator: "/").last ?? "")
    }
}
