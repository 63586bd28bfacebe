/// Reading `spec.providerID` text, in any casing, into a `ProviderID`, and writing it back in
/// the one lower-cased spelling every key in this program uses.
extension ProviderID {
    /// The longest `azure://` ID accepted; real ones stay far below (ARM caps names and groups).
    static let maximumAzureLength = 2048

    /// Reads a provider ID as Kubernetes stores it.
    ///
    /// The empty string is `.empty`; text that does not start with `azure://` (in any casing) is
    /// `.unmanaged`. An `azure:///subscriptions/...` ID is matched case-insensitively and names
    /// either a uniform scale set instance (last segment a decimal instance ID or
    /// `<vmss>_<instanceId>`) or a VM resource.
    /// - Throws: `ProviderIDError` naming what is wrong when the text starts with `azure://` but
    ///   is not one of those forms.
    public init(parsing text: String) throws(ProviderIDError) {
        if text.isEmpty {
            self = .empty
            return
        }
        let scheme = "azure://"
        guard text.utf8.count >= scheme.utf8.count,
            String(decoding: text.utf8.prefix(scheme.utf8.count), as: UTF8.self).lowercased()
                == scheme
        else {
            self = .unmanaged(text)
            return
        }
        guard text.utf8.count <= Self.maximumAzureLength else {
            throw ProviderIDError(
                "provider ID is \(text.utf8.count) bytes long; at most "
                    + "\(Self.maximumAzureLength) expected")
        }
        let path = Substring(text).dropFirst(scheme.count)
        guard path.first == "/" else {
            throw ProviderIDError(
                "provider ID must start with \"azure:///subscriptions/\" (three slashes), got "
                    + quoted(text))
        }
        let segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        self = try Self.parseSegments(segments, text: text)
    }

    private static func parseSegments(
        _ segments: [Substring], text: String
    ) throws(ProviderIDError) -> ProviderID {
        let expected: [(index: Int, keyword: String)] = [
            (0, "subscriptions"), (2, "resourceGroups"), (4, "providers"), (5, "Microsoft.Compute"),
        ]
        let names = [1: "subscription ID", 3: "resource group name"]
        for position in 0..<min(segments.count, 7) {
            let segment = segments[position]
            if let keyword = expected.first(where: { $0.index == position })?.keyword {
                if position == 5, !segment.isEmpty,
                    segment.lowercased() != keyword.lowercased()
                {
                    let type = segments.count > 6 ? "\(segment)/\(segments[6])" : String(segment)
                    throw ProviderIDError(
                        "wrong resource type \(quoted(type)) in provider ID; expected "
                            + "Microsoft.Compute/virtualMachineScaleSets or "
                            + "Microsoft.Compute/virtualMachines")
                }
                guard segment.lowercased() == keyword.lowercased() else {
                    let found = segment.isEmpty ? "an empty segment" : quoted(String(segment))
                    throw ProviderIDError(
                        "missing segment \"\(keyword)\" in provider ID: found \(found) at position "
                            + "\(position + 1) of \(quoted(text))")
                }
            } else if let what = names[position] {
                try checkName(segment, what: what)
            }
        }
        guard segments.count >= 7 else {
            let missing = [
                "subscriptions", "subscription ID", "resourceGroups",
                "resource group name", "providers", "Microsoft.Compute", "resource type",
            ]
            throw ProviderIDError(
                "missing segment \"\(missing[segments.count])\": provider ID ends early: "
                    + quoted(text))
        }
        let group = ResourceGroupRef(
            subscriptionID: String(segments[1]), name: String(segments[3]))
        switch segments[6].lowercased() {
        case "virtualmachines":
            guard segments.count >= 8 else {
                throw ProviderIDError(
                    "missing segment \"VM name\": provider ID ends early: "
                        + quoted(text))
            }
            try checkName(segments[7], what: "VM name")
            try checkNoTrailing(segments, count: 8, text: text)
            return .virtualMachine(
                VirtualMachineRef(resourceGroup: group, name: String(segments[7])))
        case "virtualmachinescalesets":
            let missing = ["scale set name", "virtualMachines", "instance ID"]
            guard segments.count >= 10 else {
                throw ProviderIDError(
                    "missing segment \"\(missing[max(segments.count - 7, 0)])\": provider ID ends "
                        + "early: " + quoted(text))
            }
            try checkName(segments[7], what: "scale set name")
            guard segments[8].lowercased() == "virtualmachines" else {
                let found = segments[8].isEmpty ? "an empty segment" : quoted(String(segments[8]))
                throw ProviderIDError(
                    "missing segment \"virtualMachines\" after the scale set name: found "
                        + "\(found) in " + quoted(text))
            }
            try checkNoTrailing(segments, count: 10, text: text)
            let instance = try instanceID(segments[9], scaleSet: segments[7])
            let scaleSet = ScaleSetRef(resourceGroup: group, name: String(segments[7]))
            return .scaleSetInstance(ScaleSetInstanceRef(scaleSet: scaleSet, instanceID: instance))
        default:
            throw ProviderIDError(
                "wrong resource type \(quoted("Microsoft.Compute/\(segments[6])")) in provider ID; "
                    + "expected virtualMachineScaleSets or virtualMachines")
        }
    }

    private static func checkName(_ segment: Substring, what: String) throws(ProviderIDError) {
        guard !segment.isEmpty else {
            throw ProviderIDError("empty segment: the \(what) in the provider ID is empty")
        }
        for byte in segment.utf8
        where byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "?")
            || byte == UInt8(ascii: "#")
        {
            throw ProviderIDError(
                "the \(what) \(quoted(String(segment))) in the provider ID holds a character "
                    + "Azure names cannot have")
        }
    }

    private static func checkNoTrailing(
        _ segments: [Substring], count: Int, text: String
    ) throws(ProviderIDError) {
        guard segments.count > count else { return }
        let rest = segments[count...].joined(separator: "/")
        let what = rest.isEmpty ? "a trailing slash" : "trailing junk \(quoted(rest))"
        throw ProviderIDError("provider ID has \(what) after its last segment: \(quoted(text))")
    }

    /// Accepts `7` or `<vmss>_7` and returns the decimal part.
    private static func instanceID(
        _ segment: Substring, scaleSet: Substring
    ) throws(ProviderIDError) -> String {
        guard !segment.isEmpty else {
            throw ProviderIDError("empty segment: the instance ID in the provider ID is empty")
        }
        var digits = segment
        if let underscore = segment.lastIndex(of: "_") {
            let prefix = segment[..<underscore]
            guard prefix.lowercased() == scaleSet.lowercased() else {
                throw ProviderIDError(
                    "bad instance ID \(quoted(String(segment))): the name before \"_\" is not the "
                        + "scale set \(quoted(String(scaleSet)))")
            }
            digits = segment[segment.index(after: underscore)...]
        }
        guard !digits.isEmpty, digits.utf8.count <= 19,
            digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else {
            throw ProviderIDError(
                "bad instance ID \(quoted(String(segment))): expected a decimal number or "
                    + "<scale set>_<number>")
        }
        return String(digits)
    }

    /// The lower-cased spelling used as a key: `azure:///subscriptions/<sub>/resourcegroups/...`.
    /// `.empty` is the empty string and `.unmanaged` is its text unchanged.
    public var canonical: String {
        switch self {
        case .empty:
            return ""
        case .unmanaged(let text):
            return text
        case .scaleSetInstance(let instance):
            let group = instance.scaleSet.resourceGroup
            return "azure:///subscriptions/\(group.subscriptionID)/resourcegroups/\(group.name)"
                + "/providers/microsoft.compute/virtualmachinescalesets/\(instance.scaleSet.name)"
                + "/virtualmachines/\(instance.instanceID)"
        case .virtualMachine(let vm):
            let group = vm.resourceGroup
            return "azure:///subscriptions/\(group.subscriptionID)/resourcegroups/\(group.name)"
                + "/providers/microsoft.compute/virtualmachines/\(vm.name)"
        }
    }
}

/// Quotes a value for an error message, cut short and with control characters escaped, so a
/// hostile provider ID cannot flood or garble a log line.
private func quoted(_ value: String) -> String {
    var out = "\""
    var count = 0
    for scalar in value.unicodeScalars {
        if count == 200 {
            out += "…"
            break
        }
        count += 1
        if scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\"" || scalar == "\\" {
            out += scalar.escaped(asASCII: true)
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
