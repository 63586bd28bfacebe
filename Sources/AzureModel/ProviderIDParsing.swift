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
        var bytes = text
        // Work on the UTF-8 bytes: walking Characters here cost most of an answer's CPU.
        let parsed = bytes.withUTF8 { utf8 -> Result<ProviderID, ProviderIDError> in
            let scheme = "azure://"
            guard utf8.count >= scheme.utf8.count,
                Segment(bytes: UnsafeBufferPointer(rebasing: utf8[..<scheme.utf8.count]))
                    .equalsIgnoringASCIICase(scheme)
            else {
                return .success(.unmanaged(text))
            }
            guard utf8.count <= Self.maximumAzureLength else {
                return .failure(
                    ProviderIDError(
                        "provider ID is \(utf8.count) bytes long; at most "
                            + "\(Self.maximumAzureLength) expected"))
            }
            let path = UnsafeBufferPointer(rebasing: utf8[scheme.utf8.count...])
            guard path.first == UInt8(ascii: "/") else {
                return .failure(
                    ProviderIDError(
                        "provider ID must start with \"azure:///subscriptions/\" (three slashes), "
                            + "got " + quoted(text)))
            }
            let segments = path.dropFirst()
                .split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
                .map { Segment(bytes: UnsafeBufferPointer(rebasing: $0)) }
            return Result { () throws(ProviderIDError) in
                try Self.parseSegments(segments, text: text)
            }
        }
        self = try parsed.get()
    }

    /// The fixed words of the first seven segments, by position; nil where a name stands.
    private static let leadingKeywords: [String?] = [
        "subscriptions", nil, "resourceGroups", nil, "providers", "Microsoft.Compute", nil,
    ]

    /// What the names among the first seven segments are, by position.
    private static let leadingNames: [String?] = [
        nil, "subscription ID", nil, "resource group name", nil, nil, nil,
    ]

    private static func parseSegments(
        _ segments: [Segment], text: String
    ) throws(ProviderIDError) -> ProviderID {
        for position in 0..<min(segments.count, 7) {
            let segment = segments[position]
            if let keyword = Self.leadingKeywords[position] {
                if position == 5, !segment.isEmpty, !segment.equalsIgnoringASCIICase(keyword) {
                    let type = segments.count > 6
                        ? "\(segment.string)/\(segments[6].string)" : segment.string
                    throw ProviderIDError(
                        "wrong resource type \(quoted(type)) in provider ID; expected "
                            + "Microsoft.Compute/virtualMachineScaleSets or "
                            + "Microsoft.Compute/virtualMachines")
                }
                guard segment.equalsIgnoringASCIICase(keyword) else {
                    let found = segment.isEmpty ? "an empty segment" : quoted(segment.string)
                    throw ProviderIDError(
                        "missing segment \"\(keyword)\" in provider ID: found \(found) at position "
                            + "\(position + 1) of \(quoted(text))")
                }
            } else if let what = Self.leadingNames[position] {
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
            subscriptionID: segments[1].string, name: segments[3].string)
        let resourceType = segments[6]
        if resourceType.equalsIgnoringASCIICase("virtualMachines") {
            guard segments.count >= 8 else {
                throw ProviderIDError(
                    "missing segment \"VM name\": provider ID ends early: "
                        + quoted(text))
            }
            try checkName(segments[7], what: "VM name")
            try checkNoTrailing(segments, count: 8, text: text)
            return .virtualMachine(
                VirtualMachineRef(resourceGroup: group, name: segments[7].string))
        }
        if resourceType.equalsIgnoringASCIICase("virtualMachineScaleSets") {
            let missing = ["scale set name", "virtualMachines", "instance ID"]
            guard segments.count >= 10 else {
                throw ProviderIDError(
                    "missing segment \"\(missing[max(segments.count - 7, 0)])\": provider ID ends "
                        + "early: " + quoted(text))
            }
            try checkName(segments[7], what: "scale set name")
            guard segments[8].equalsIgnoringASCIICase("virtualMachines") else {
                let found = segments[8].isEmpty ? "an empty segment" : quoted(segments[8].string)
                throw ProviderIDError(
                    "missing segment \"virtualMachines\" after the scale set name: found "
                        + "\(found) in " + quoted(text))
            }
            try checkNoTrailing(segments, count: 10, text: text)
            let instance = try instanceID(segments[9], scaleSet: segments[7])
            let scaleSet = ScaleSetRef(resourceGroup: group, name: segments[7].string)
            return .scaleSetInstance(ScaleSetInstanceRef(scaleSet: scaleSet, instanceID: instance))
        }
        let type = quoted("Microsoft.Compute/\(resourceType.string)")
        throw ProviderIDError(
            "wrong resource type \(type) in provider ID; "
                + "expected virtualMachineScaleSets or virtualMachines")
    }

    private static func checkName(_ segment: Segment, what: String) throws(ProviderIDError) {
        guard !segment.isEmpty else {
            throw ProviderIDError("empty segment: the \(what) in the provider ID is empty")
        }
        for byte in segment.utf8
        where byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "?")
            || byte == UInt8(ascii: "#")
        {
            throw ProviderIDError(
                "the \(what) \(quoted(segment.string)) in the provider ID holds a character "
                    + "Azure names cannot have")
        }
    }

    private static func checkNoTrailing(
        _ segments: [Segment], count: Int, text: String
    ) throws(ProviderIDError) {
        guard segments.count > count else { return }
        let rest = segments[count...].map(\.string).joined(separator: "/")
        let what = rest.isEmpty ? "a trailing slash" : "trailing junk \(quoted(rest))"
        throw ProviderIDError("provider ID has \(what) after its last segment: \(quoted(text))")
    }

    /// Accepts `7` or `<vmss>_7` and returns the decimal part.
    private static func instanceID(
        _ segment: Segment, scaleSet: Segment
    ) throws(ProviderIDError) -> String {
        guard !segment.isEmpty else {
            throw ProviderIDError("empty segment: the instance ID in the provider ID is empty")
        }
        var digits = segment
        if let underscore = segment.utf8.lastIndex(of: UInt8(ascii: "_")) {
            let prefix = Segment(bytes: UnsafeBufferPointer(rebasing: segment.utf8[..<underscore]))
            guard prefix.equalsIgnoringASCIICase(scaleSet) else {
                throw ProviderIDError(
                    "bad instance ID \(quoted(segment.string)): the name before \"_\" is not the "
                        + "scale set \(quoted(scaleSet.string))")
            }
            let number = segment.utf8[(underscore + 1)...]
            digits = Segment(bytes: UnsafeBufferPointer(rebasing: number))
        }
        guard !digits.isEmpty, digits.utf8.count <= 19,
            digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else {
            throw ProviderIDError(
                "bad instance ID \(quoted(segment.string)): expected a decimal number or "
                    + "<scale set>_<number>")
        }
        return digits.string
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

/// One `/`-separated part of a provider ID, as UTF-8 bytes that live as long as the text.
private struct Segment {
    let utf8: UnsafeBufferPointer<UInt8>

    init(bytes: UnsafeBufferPointer<UInt8>) {
        utf8 = bytes
    }

    var isEmpty: Bool { utf8.isEmpty }

    var string: String { String(decoding: utf8, as: UTF8.self) }

    /// Whether the bytes equal `other`'s when ASCII letters are compared without case; Azure
    /// resource names and keywords are ASCII, and this needs no lower-cased copies.
    func equalsIgnoringASCIICase(_ other: String) -> Bool {
        var other = other
        return other.withUTF8 { equalsIgnoringASCIICase(Segment(bytes: $0)) }
    }

    func equalsIgnoringASCIICase(_ other: Segment) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        for (left, right) in zip(utf8, other.utf8) where left != right {
            let folded = left | 0x20
            guard folded == right | 0x20, folded &- UInt8(ascii: "a") < 26 else { return false }
        }
        return true
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
