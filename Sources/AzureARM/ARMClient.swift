import AzureModel
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The Azure Resource Manager reads the cache needs, over URLSession, with token handling,
/// per-subscription throttling, transient retries and counters.
///
/// Every failure is sorted by `ARMClassifier` into a `CloudError`; every HTTP request (each page,
/// each retry) is counted in `counters`.
public final class ARMClient: InstanceBackend, Sendable {
    /// The API versions of each read.
    public enum APIVersion {
        public static let compute = "2024-07-01"
        public static let scaleSetVMNICs = "2018-10-01"
        public static let network = "2024-05-01"
    }

    /// Knobs tests turn; the defaults suit production.
    public struct Options: Sendable {
        /// First backoff delay before a transient retry; doubled each time, with jitter.
        public var backoffBase: Double = 0.5
        /// Longest backoff delay.
        public var backoffCap: Double = 8
        /// Pages followed at most in one listing, so a looping `nextLink` cannot run for ever.
        public var maximumPages = 10_000

        public init() {}
    }

    public let configuration: CloudConfiguration
    /// Request counts by operation and outcome, and token renewals.
    public let counters: ARMCounters
    /// The per-subscription throttle gate and token bucket.
    public let gate: ThrottleGate
    private let session: URLSession
    private let tokens: TokenSource
    private let clock: ARMClock
    private let options: Options

    /// Builds a client; nothing is sent until the first read.
    public init(
        configuration: CloudConfiguration, clock: ARMClock = .system, options: Options = Options()
    ) {
        self.configuration = configuration
        self.clock = clock
        self.options = options
        let sessionConfiguration = URLSessionConfiguration.ephemeral
        sessionConfiguration.timeoutIntervalForRequest = configuration.requestTimeout
        sessionConfiguration.httpCookieStorage = nil
        sessionConfiguration.urlCache = nil
        session = URLSession(
            configuration: sessionConfiguration, delegate: NoRedirects(), delegateQueue: nil)
        counters = ARMCounters()
        gate = ThrottleGate(
            qps: configuration.rateLimitQPS, burst: configuration.rateLimitBucket, clock: clock)
        tokens = TokenSource(
            configuration: configuration, session: session, counters: counters, clock: clock)
    }

    deinit {
        session.invalidateAndCancel()
    }

    /// Counts of every request by operation and outcome.
    public func armCallCounts() -> [(operation: String, outcome: String, count: UInt64)] {
        counters.snapshot()
    }

    /// Seconds until each subscription's throttle gate opens.
    public func throttleGateState() -> [String: Double] {
        gate.secondsUntilOpen()
    }

    /// Obtains a token now, so that readiness can be reported before the first question.
    /// - Throws: the `CloudError` the token endpoint's answer was classified as.
    public func prefetchToken() async throws(CloudError) {
        _ = try await tokens.token()
    }

    // MARK: - InstanceBackend

    public func listScaleSetVirtualMachines(
        _ scaleSet: ScaleSetRef
    ) async throws(CloudError) -> [VirtualMachine] {
        let path = scaleSetPath(scaleSet) + "/virtualMachines"
        let query = "$expand=instanceView&api-version=\(APIVersion.compute)"
        var vms: [VirtualMachine] = []
        try await list(
            .listScaleSetVMs, subscription: scaleSet.resourceGroup.subscriptionID,
            path: path, query: query
        ) { bytes throws(ARMDecodingError) in
            let page = try ARMDecoder.decodeVirtualMachinePage(bytes, scaleSetInstances: true)
            vms.append(contentsOf: page.vms)
            return page.nextLink
        }
        return vms
    }

    public func getVirtualMachine(
        _ vm: VirtualMachineRef
    ) async throws(CloudError) -> VirtualMachine {
        let path =
            groupPath(vm.resourceGroup) + "/providers/Microsoft.Compute/virtualMachines/"
            + segment(vm.name)
        let url = try url(
            path: path, query: "$expand=instanceView&api-version=\(APIVersion.compute)")
        let bytes = try await send(.getVM, subscription: vm.resourceGroup.subscriptionID, url: url)
        return try decoded(.getVM) { () throws(ARMDecodingError) in
            try ARMDecoder.decodeVirtualMachine(bytes, scaleSetInstance: false)
        }
    }

    public func listScaleSets(
        _ resourceGroup: ResourceGroupRef
    ) async throws(CloudError) -> [ScaleSetSummary] {
        let path = groupPath(resourceGroup) + "/providers/Microsoft.Compute/virtualMachineScaleSets"
        var sets: [ScaleSetSummary] = []
        try await list(
            .listScaleSets, subscription: resourceGroup.subscriptionID, path: path,
            query: "api-version=\(APIVersion.compute)"
        ) { bytes throws(ARMDecodingError) in
            let page = try ARMDecoder.decodeScaleSetPage(bytes, resourceGroup: resourceGroup)
            sets.append(contentsOf: page.scaleSets)
            return page.nextLink
        }
        return sets
    }

    public func privateIPAddresses(
        of instance: ScaleSetInstanceRef
    ) async throws(CloudError) -> [String] {
        let path =
            scaleSetPath(instance.scaleSet) + "/virtualMachines/" + segment(instance.instanceID)
            + "/networkInterfaces"
        var addresses: [String] = []
        try await list(
            .listScaleSetVMNICs, subscription: instance.scaleSet.resourceGroup.subscriptionID,
            path: path, query: "api-version=\(APIVersion.scaleSetVMNICs)"
        ) { bytes throws(ARMDecodingError) in
            let page = try ARMDecoder.decodeNetworkInterfacePage(bytes)
            addresses.append(contentsOf: page.addresses)
            return page.nextLink
        }
        return addresses
    }

    public func privateIPAddresses(
        ofNetworkInterface id: String
    ) async throws(CloudError) -> [String] {
        let parts = id.split(separator: "/", omittingEmptySubsequences: false)
        guard id.hasPrefix("/"), parts.count >= 9, parts[1].lowercased() == "subscriptions",
            !id.contains("?"), !id.contains("#"),
            !parts.dropFirst().contains(where: { $0.isEmpty || $0 == ".." })
        else {
            throw CloudError.fault(
                "network interface ID is not an ARM resource ID: \(id.prefix(200))")
        }
        let url = try url(path: id, query: "api-version=\(APIVersion.network)")
        let bytes = try await send(.getNIC, subscription: String(parts[2]).lowercased(), url: url)
        return try decoded(.getNIC) { () throws(ARMDecodingError) in
            try ARMDecoder.decodeNetworkInterface(bytes)
        }
    }

    // MARK: - Requests

    private func groupPath(_ group: ResourceGroupRef) -> String {
        "/subscriptions/\(segment(group.subscriptionID))/resourceGroups/\(segment(group.name))"
    }

    private func scaleSetPath(_ scaleSet: ScaleSetRef) -> String {
        groupPath(scaleSet.resourceGroup) + "/providers/Microsoft.Compute/virtualMachineScaleSets/"
            + segment(scaleSet.name)
    }

    private func segment(_ text: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/;?#")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    private func url(path: String, query: String) throws(CloudError) -> URL {
        guard
            let url = URL(
                string: configuration.endpoints.resourceManager.absoluteString + path + "?" + query)
        else {
            throw CloudError.fault("cannot build an ARM URL for \(path.prefix(200))")
        }
        return url
    }

    /// Runs a decoder; a body it cannot read is a fault, counted against the operation.
    private func decoded<T>(
        _ operation: ARMOperation, _ body: () throws(ARMDecodingError) -> T
    ) throws(CloudError) -> T {
        do {
            return try body()
        } catch {
            throw CloudError.fault("\(operation.rawValue): unreadable ARM body: \(error.message)")
        }
    }

    /// Fetches every page of a listing, handing each body to `page`, which returns `nextLink`.
    ///
    /// Only the first page can say the resource is gone: once it has answered, a 404 on a later
    /// page proves nothing about it (an expired skip token, a proxy) and is transient.
    private func list(
        _ operation: ARMOperation, subscription: String, path: String, query: String,
        page: ([UInt8]) throws(ARMDecodingError) -> String?
    ) async throws(CloudError) {
        let first = try url(path: path, query: query)
        var next: URL? = first
        var seen = Set<String>()
        var pages = 0
        while let current = next {
            pages += 1
            guard pages <= options.maximumPages, seen.insert(current.absoluteString).inserted else {
                throw CloudError.fault("\(operation.rawValue): nextLink repeats or never ends")
            }
            let bytes: [UInt8]
            do {
                bytes = try await send(operation, subscription: subscription, url: current)
            } catch .gone(let code) where pages > 1 {
                throw CloudError.transient(
                    "\(operation.rawValue): page \(pages) answered 404 \(code) after the first "
                        + "page was read; not taken as deletion")
            }
            let link = try decoded(operation) { () throws(ARMDecodingError) in try page(bytes) }
            next = try link.map { link throws(CloudError) in
                try checkedNextLink(link, of: first, operation: operation)
            }
        }
    }

    /// A `nextLink` is followed only to the configured ARM endpoint, since the bearer token goes
    /// with it, and only to the path of the listing's first request, so that a link naming
    /// another resource can never mix its items (or its 404) into this listing.
    private func checkedNextLink(
        _ link: String, of first: URL, operation: ARMOperation
    ) throws(CloudError) -> URL {
        let arm = configuration.endpoints.resourceManager
        guard let url = URL(string: link), let host = url.host,
            url.scheme?.lowercased() == arm.scheme?.lowercased(),
            host.lowercased() == arm.host?.lowercased(),
            (url.port ?? defaultPort(url)) == (arm.port ?? defaultPort(arm))
        else {
            throw CloudError.fault(
                "\(operation.rawValue): nextLink does not point at the ARM endpoint "
                    + "\(arm.host ?? ""); not followed")
        }
        guard let linkPath = Self.pathSegments(url), let firstPath = Self.pathSegments(first),
            linkPath == firstPath, url.fragment == nil
        else {
            throw CloudError.fault(
                "\(operation.rawValue): nextLink leaves the listing's path "
                    + "\(first.path.prefix(200)); not followed")
        }
        return url
    }

    /// The decoded, lowercased segments of a URL's path without a trailing empty one, so that
    /// casing, equivalent percent-encoding and a trailing slash do not matter but an encoded
    /// slash stays inside its segment. Nil when the path cannot be read or climbs (`..`).
    static func pathSegments(_ url: URL) -> [String]? {
        guard let encoded = URLComponents(url: url, resolvingAgainstBaseURL: false)?
            .percentEncodedPath
        else { return nil }
        var segments: [String] = []
        for part in encoded.split(separator: "/", omittingEmptySubsequences: false) {
            guard let decoded = String(part).removingPercentEncoding else { return nil }
            guard decoded != "..", decoded != "." else { return nil }
            segments.append(decoded.lowercased())
        }
        while segments.count > 1, segments.last == "" { segments.removeLast() }
        return segments
    }

    private func defaultPort(_ url: URL) -> Int {
        url.scheme?.lowercased() == "http" ? 80 : 443
    }

    /// One logical request: gate, token, send, classify, with one token renewal on 401 and
    /// jittered exponential backoff on transient failures.
    private func send(
        _ operation: ARMOperation, subscription: String, url: URL
    ) async throws(CloudError) -> [UInt8] {
        var renewed = false
        var retries = 0
        var rejected: String?
        while true {
            do {
                try await gate.admit(subscription)
            } catch {
                counters.record(operation, .throttledLocally)
                throw error
            }
            let token: String
            do {
                token = try await tokens.token(rejecting: rejected)
            }
            var request = URLRequest(url: url)
            request.setValue("Bearer " + token, forHTTPHeaderField: "Authorization")
            request.setValue("application/json", forHTTPHeaderField: "Accept")
            request.timeoutInterval = configuration.requestTimeout
            let failure: CloudError
            do {
                let (data, response) = try await session.data(for: request)
                let http = response as? HTTPURLResponse
                let status = http?.statusCode ?? 0
                if (200...299).contains(status) {
                    counters.record(operation, .ok)
                    return [UInt8](data)
                }
                let bytes = [UInt8](data)
                let error = ARMDecoder.decodeError(bytes)
                failure =
                    ARMClassifier.classify(
                        status: status, code: error?.code, message: error?.message,
                        retryAfter: http?.value(forHTTPHeaderField: "Retry-After"),
                        now: clock.now(),
                        operation: operation.rawValue)
                    ?? .fault("\(operation.rawValue): no HTTP status")
                counters.record(operation, ARMOutcome(failure))
                if status == 401 && !renewed {
                    renewed = true
                    rejected = token
                    continue
                }
            } catch {
                failure = ARMClassifier.classify(
                    transportError: error, operation: operation.rawValue)
                counters.record(operation, ARMOutcome(failure))
            }
            switch failure {
            case .throttled(let until):
                gate.close(subscription, until: until)
                throw failure
            case .transient where retries < configuration.backoffRetries:
                let delay = min(options.backoffCap, options.backoffBase * pow(2, Double(retries)))
                retries += 1
                await clock.sleep(delay * Double.random(in: 0.5...1))
            default:
                throw failure
            }
        }
    }
}

/// Refuses redirects: a bearer token must not follow one to another host.
private final class NoRedirects: NSObject, URLSessionTaskDelegate, Sendable {
    func urlSession(
        _ session: URLSession, task: URLSessionTask,
        willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}
