import AzureARM
import AzureModel
import Dispatch
import Foundation
import GRPCTransport
import InstancesProto
import Metrics
import Reflection
import Synchronization
import VMSSCache
import VMSSLog
import VMSSService

/// The running server: configuration read, the ARM client, the shared cache, the gRPC services
/// and the socket, started and stopped in order.
final class Daemon: Sendable {
    private let options: Options
    private let logger: Logger
    private let configuration: CloudConfiguration
    private let arm: ARMClient
    private let cache: InstanceCache
    private let health: HealthService
    private let server: GRPCServer
    private let readiness: Readiness
    private let metrics: DaemonMetrics
    private let metricsServer = Mutex<MetricsServer?>(nil)
    private let tokenTask = Mutex<Task<Void, Never>?>(nil)

    /// Reads and checks the configuration and builds every part; nothing is bound or sent yet.
    /// - Throws: a `ConfigurationError` naming the faulty setting.
    init(options: Options, logger: Logger) throws {
        self.options = options
        self.logger = logger

        var overrides = ConfigurationOverrides()
        overrides.subscriptionID = options.subscriptionID
        overrides.resourceGroup = options.resourceGroup
        overrides.resourceManagerEndpoint = options.armEndpoint
        overrides.activeDirectoryEndpoint = options.aadEndpoint
        overrides.managedIdentityEndpoint = options.imdsEndpoint
        overrides.requestTimeout = options.armTimeout
        overrides.rateLimitQPS = options.rateLimitQPS
        overrides.rateLimitBucket = options.rateLimitBucket
        configuration = try CloudConfiguration.load(
            path: options.cloudConfigPath, overrides: overrides)
        arm = ARMClient(configuration: configuration)

        var cacheConfiguration = CacheConfiguration()
        cacheConfiguration.listingTTL = options.listingTTL ?? configuration.scaleSetCacheTTL
        cacheConfiguration.virtualMachineTTL = options.virtualMachineTTL ?? configuration.vmCacheTTL
        cacheConfiguration.negativeTTL = options.negativeCacheTTL
        cacheConfiguration.refreshOnMissInterval = options.refreshOnMissInterval
        cacheConfiguration.maxStale = options.maxStale
        cacheConfiguration.maxScaleSets = options.cacheMaxScaleSets
        cacheConfiguration.newNodeGrace = options.newNodeGrace
        cacheConfiguration.resourceGroup = ResourceGroupRef(
            subscriptionID: configuration.subscriptionID, name: configuration.resourceGroup)
        cache = InstanceCache(backend: arm, configuration: cacheConfiguration)

        let reflectedServices = [
            InstancesService.name, AdminService.name, "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
        ]
        health = HealthService(services: [InstancesService.name, AdminService.name])
        let instances = InstancesService(cache: cache, logger: logger)
        let arm = self.arm
        let admin = AdminService(cache: cache) {
            arm.armCallCounts().map {
                ARMCallCount(operation: $0.operation, outcome: $0.outcome, count: $0.count)
            }
        }
        var handlers = instances.handlers
        handlers.merge(admin.handlers) { first, _ in first }
        handlers.merge(health.handlers) { first, _ in first }
        let reflection = ReflectionService(
            index: ServiceDescriptors.index, services: reflectedServices)
        handlers.merge(reflection.handlers) { first, _ in first }

        // The server is made below, but readiness asks it whether it accepts only later.
        let serverBox = Mutex<GRPCServer?>(nil)
        readiness = Readiness(accepting: { serverBox.withLock { $0?.isAccepting ?? false } })
        metrics = DaemonMetrics(
            methods: Array(handlers.keys), cache: cache, arm: arm,
            subscriptionID: configuration.subscriptionID, readiness: readiness)

        var serverConfiguration = GRPCServerConfiguration(socketPath: options.socketPath)
        serverConfiguration.socketMode = options.socketMode
        serverConfiguration.eventLoopCount = max(options.eventLoops, 1)
        serverConfiguration.drainTimeout = .milliseconds(Int64(options.drainTimeout * 1000))
        serverConfiguration.allowedUIDs = options.allowedUIDs
        if options.metricsAddress != nil {
            serverConfiguration.callObserver = metrics.callObserver
        }
        server = GRPCServer(
            configuration: serverConfiguration, handlers: handlers,
            logger: Daemon.transportLogSink(logger))
        serverBox.withLock { [server] in $0 = server }

        logEffectiveConfiguration(cacheConfiguration)
    }

    /// Binds the socket and starts serving; health says SERVING once the first token is in hand.
    /// Starts the metrics server first (when asked for), so /healthz answers from the start.
    func start() throws {
        warnIfSocketDirectoryIsShared()
        if let address = options.metricsAddress {
            let metrics = self.metrics
            let readiness = self.readiness
            let metricsServer = try MetricsServer(
                address: address, render: { metrics.render() }, ready: { readiness.check() })
            self.metricsServer.withLock { $0 = metricsServer }
            logger.info("serving metrics", ["address": address, "port": Int(metricsServer.port)])
        }
        try server.start()
        logger.info("serving", ["socket": options.socketPath])
        let task = Task { [arm, health, logger, readiness] in
            var delay = 1.0
            while !Task.isCancelled {
                do {
                    try await arm.prefetchToken()
                    readiness.tokenObtained()
                    health.setStatus(.serving)
                    logger.info("first token obtained; serving", level: 1)
                    return
                } catch {
                    logger.warning(
                        "cannot obtain a token yet", ["error": "\(error)", "retry_in_s": delay])
                    try? await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
                    delay = min(delay * 2, 30)
                }
            }
        }
        tokenTask.withLock { $0 = task }
    }

    /// Reports NOT_SERVING, drains the calls in flight, and removes the socket.
    /// /readyz answers 503 from here on; /healthz and /metrics answer until the socket is gone.
    func stop() {
        tokenTask.withLock { $0?.cancel() }
        readiness.draining()
        health.setStatus(.notServing)
        server.shutdown()
        metricsServer.withLock { $0?.stop() }
    }

    /// Passes the transport's event lines (`grpc.<event> key=value...`) to the logger: a refused
    /// peer or a failing accept is a warning an operator must see; protocol errors of single
    /// clients are details, at verbosity 2, so a hostile client cannot flood the log.
    private static func transportLogSink(_ logger: Logger) -> GRPCLogSink {
        { line in
            let parts = line.split(separator: " ", maxSplits: 1)
            let event = parts.first.map(String.init) ?? line
            let detail = parts.count > 1 ? String(parts[1]) : ""
            if event == "grpc.server.peer_refused" || event == "grpc.server.accept_failed" {
                logger.warning("transport", ["event": event, "detail": detail])
            } else {
                logger.info("transport", level: 2, ["event": event, "detail": detail])
            }
        }
    }

    private func warnIfSocketDirectoryIsShared() {
        guard !options.socketPath.hasPrefix("@") else { return }
        let directory = (options.socketPath as NSString).deletingLastPathComponent
        var info = stat()
        guard stat(directory.isEmpty ? "." : directory, &info) == 0 else { return }
        let writableByOthers = info.st_mode & (S_IWOTH | S_IWGRP) != 0
        let sticky = info.st_mode & S_ISVTX != 0
        if writableByOthers {
            logger.warning(
                "the socket's directory is writable by other users",
                ["directory": directory, "sticky": sticky])
        }
    }

    private func logEffectiveConfiguration(_ cache: CacheConfiguration) {
        logger.info(
            "configuration",
            [
                "socket": options.socketPath,
                "socket_mode": String(options.socketMode, radix: 8),
                "cloud": configuration.cloudName,
                "arm_endpoint": configuration.endpoints.resourceManager.absoluteString,
                "aad_endpoint": configuration.endpoints.activeDirectory.absoluteString,
                "subscription_id": configuration.subscriptionID,
                "resource_group": configuration.resourceGroup,
                "credential": "\(configuration.credential)",
                "listing_ttl_s": cache.listingTTL,
                "vm_ttl_s": cache.virtualMachineTTL,
                "negative_ttl_s": cache.negativeTTL,
                "refresh_on_miss_interval_s": cache.refreshOnMissInterval,
                "max_stale_s": cache.maxStale ?? 2 * cache.listingTTL,
                "cache_max_scale_sets": cache.maxScaleSets,
                "new_node_grace_s": cache.newNodeGrace,
                "rate_limit_qps": configuration.rateLimitQPS,
                "rate_limit_bucket": configuration.rateLimitBucket,
                "drain_timeout_s": options.drainTimeout,
                "allowed_uids": options.allowedUIDs.map {
                    $0.sorted().map(String.init)
                        .joined(separator: ",")
                } ?? "any",
                "event_loops": options.eventLoops,
                "metrics_address": options.metricsAddress ?? "off",
                "log_format": options.logFormat,
                "verbosity": options.verbosity,
            ])
    }
}

/// Blocks until SIGTERM, SIGINT or SIGHUP arrives. The signals are taken from dispatch sources
/// rather than a signal handler, so that what follows may do real work.
func waitForStopSignal(logger: Logger) {
    let stopRequested = DispatchSemaphore(value: 0)
    var sources: [DispatchSourceSignal] = []
    // SIGHUP too: a terminal that closes under `make run`, or an operator's reflex, must still
    // drain and remove the socket rather than kill the process on the spot.
    for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT"), (SIGHUP, "SIGHUP")] {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { @Sendable in
            logger.info("stopping", ["signal": name])
            stopRequested.signal()
        }
        source.resume()
        sources.append(source)
    }
    stopRequested.wait()
    for source in sources {
        source.cancel()
    }
}
