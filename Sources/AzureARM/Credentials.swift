import AzureModel
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// An access token and when it stops working. Its description never shows the token.
struct AccessToken: Sendable, CustomStringConvertible {
    let value: String
    let expiresAt: Double
    let renewAt: Double

    var description: String { "access token (expires at \(expiresAt))" }
}

/// Fetches and caches ARM access tokens for one credential.
///
/// A token is renewed early (10% of its lifetime, at most 5 minutes, before it expires). However
/// many callers need a token at once, one request is in flight; the others await its result
/// as suspended tasks, not blocked threads.
actor TokenSource {
    private let configuration: CloudConfiguration
    private let session: URLSession
    private let counters: ARMCounters
    private let clock: ARMClock
    private var cached: AccessToken?
    private var inFlight: Task<Result<AccessToken, CloudError>, Never>?

    init(
        configuration: CloudConfiguration, session: URLSession, counters: ARMCounters,
        clock: ARMClock
    ) {
        self.configuration = configuration
        self.session = session
        self.counters = counters
        self.clock = clock
    }

    /// A token that is not due for renewal, fetching one if needed.
    /// - Parameter rejected: a token ARM refused; when it is still the cached one it is renewed,
    ///   and when another caller already replaced it the replacement is returned.
    func token(rejecting rejected: String? = nil) async throws(CloudError) -> String {
        if let cached, cached.value != rejected, clock.now() < cached.renewAt {
            return cached.value
        }
        if let cached, rejected != nil, cached.value != rejected {
            return cached.value
        }
        let task: Task<Result<AccessToken, CloudError>, Never>
        if let inFlight {
            task = inFlight
        } else {
            task = Task { await self.fetch() }
            inFlight = task
        }
        let result = await task.value
        if inFlight == task { inFlight = nil }
        let token = try result.get()
        cached = token
        return token.value
    }

    private func fetch() async -> Result<AccessToken, CloudError> {
        do throws(CloudError) {
            let request = try tokenRequest()
            let started = clock.now()
            let (data, response): (Data, URLResponse)
            do {
                (data, response) = try await session.data(for: request)
            } catch {
                let failure = ARMClassifier.classify(
                    transportError: error, operation: "token request")
                counters.record(.token, .transient)
                throw failure
            }
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            guard status == 200 else {
                // The body's `error` code (invalid_client, ...) says enough; its description can
                // quote request details, so it is left out.
                let code = TokenBody(data)?.string("error").map { " \($0)" } ?? ""
                let message =
                    "token request to \(request.url?.host ?? "?") answered HTTP \(status)\(code)"
                let failure: CloudError =
                    ARMClassifier.isTransient(status: status) || status == 429
                    ? .transient(message) : .fault(message)
                counters.record(.token, ARMOutcome(failure))
                throw failure
            }
            guard let body = TokenBody(data), let value = body.string("access_token"),
                !value.isEmpty,
                let lifetime = body.number("expires_in"), lifetime > 0
            else {
                counters.record(.token, .fault)
                throw CloudError.fault("token response has no access_token or expires_in")
            }
            counters.record(.token, .ok)
            counters.recordRenewal()
            let margin = min(300, lifetime / 10)
            return .success(
                AccessToken(
                    value: value, expiresAt: started + lifetime,
                    renewAt: started + lifetime - margin))
        } catch {
            return .failure(error)
        }
    }

    private func tokenRequest() throws(CloudError) -> URLRequest {
        let audience = configuration.endpoints.tokenAudience
        var scope = audience
        while scope.hasSuffix("/") { scope.removeLast() }
        scope += "/.default"
        switch configuration.credential {
        case .clientSecret(let clientID, let secret):
            return formRequest([
                ("grant_type", "client_credentials"), ("client_id", clientID),
                ("client_secret", secret), ("scope", scope),
            ])
        case .workloadIdentity(let clientID, let tokenFile):
            // Re-read at each renewal: the kubelet rotates the projected token file.
            guard let data = FileManager.default.contents(atPath: tokenFile) else {
                throw CloudError.fault("cannot read aadFederatedTokenFile \(tokenFile)")
            }
            let assertion = String(decoding: data, as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            guard !assertion.isEmpty else {
                throw CloudError.fault("aadFederatedTokenFile \(tokenFile) is empty")
            }
            return formRequest([
                ("grant_type", "client_credentials"), ("client_id", clientID),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion), ("scope", scope),
            ])
        case .managedIdentity(let identity):
            var query = [("api-version", "2018-02-01"), ("resource", audience)]
            switch identity {
            case .clientID(let id)?: query.append(("client_id", id))
            case .resourceID(let id)?: query.append(("msi_res_id", id))
            case nil: break
            }
            let base = configuration.managedIdentityEndpoint.absoluteString
            var request = URLRequest(
                url: URL(string: base + "/metadata/identity/oauth2/token?" + formEncode(query))!)
            request.setValue("true", forHTTPHeaderField: "Metadata")
            request.timeoutInterval = configuration.requestTimeout
            return request
        }
    }

    private func formRequest(_ fields: [(String, String)]) -> URLRequest {
        let tenant =
            configuration.tenantID.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)
            ?? configuration.tenantID
        let url = configuration.endpoints.activeDirectory
            .appendingPathComponent(tenant).appendingPathComponent("oauth2/v2.0/token")
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(formEncode(fields).utf8)
        request.timeoutInterval = configuration.requestTimeout
        return request
    }
}

/// `application/x-www-form-urlencoded` encoding.
func formEncode(_ fields: [(String, String)]) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return fields.map { key, value in
        let encodedKey = key.addingPercentEncoding(withAllowedCharacters: allowed) ?? key
        let encodedValue = value.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
        return encodedKey + "=" + encodedValue
    }.joined(separator: "&")
}

/// A token endpoint's JSON answer. `expires_in` is a number from Entra ID and a string from the
/// managed identity endpoint; both are read.
struct TokenBody {
    let values: [String: ConfigValue]

    init?(_ data: Data) {
        guard let values = try? JSONDecoder().decode([String: ConfigValue].self, from: data) else {
            return nil
        }
        self.values = values
    }

    func string(_ key: String) -> String? {
        if case .string(let text)? = values[key] { return text }
        return nil
    }

    func number(_ key: String) -> Double? {
        switch values[key] {
        case .number(let value)?: value
        case .string(let text)?: Double(text)
        default: nil
        }
    }
}
