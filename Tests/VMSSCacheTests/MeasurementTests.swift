import AzureModel
import Foundation
import Synchronization
import Testing
import VMSSCache

/// Figures for the hot path and memory; run with `VMSS_MEASURE=1`, ideally `-c release`.
@Suite(
    "Measurements", .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["VMSS_MEASURE"] == "1"))
struct MeasurementTests {
    static let prefix = "aks-nodepool1-12345678-vmss"

    static func realisticListing(_ scaleSet: ScaleSetRef, count: Int) -> [VirtualMachine] {
        (0..<count).map { id in
            VirtualMachine(
                name: "\(scaleSet.name)_\(id)",
                instanceID: String(id),
                computerName: prefix + base36(id),
                location: "eastus",
                zones: [String(id % 3 + 1)],
                vmSize: "Standard_D4s_v3",
                provisioningState: .succeeded,
                powerState: .running,
                platformFaultDomain: id % 5,
                primaryNetworkInterfaceID: nil
            )
        }
    }

    static func threadCPUSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else {
            return 0
        }
        let fields = statm.split(separator: " ")
        return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    @Test("a cached exists answer costs well under a microsecond and allocates nothing of ours")
    func hotPath() async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = Self.realisticListing(pool, count: 1_000) }
        _ = await fixture.exists(node(pool, 1))
        let questions = (0..<1_000).map { node(pool, $0) }
        let trues = Atomic<Int>(0)
        let completion: @Sendable (Result<Bool, VerdictFailure>) -> Void = { result in
            if case .success(true) = result { trues.add(1, ordering: .relaxed) }
        }
        let rounds = Int(ProcessInfo.processInfo.environment["VMSS_ROUNDS"] ?? "") ?? 1_000

        let start = ContinuousClock.now
        let cpuStart = Self.threadCPUSeconds()
        for _ in 0..<rounds {
            for question in questions {
                fixture.cache.instanceExists(question, completion: completion)
            }
        }
        let cpu = Self.threadCPUSeconds() - cpuStart
        let elapsed = ContinuousClock.now - start

        let answers = rounds * questions.count
        let seconds =
            Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        // The loop never suspends, so this thread's CPU time is the cost, whatever else runs.
        let nanoseconds = cpu * 1e9 / Double(answers)
        print(
            "hot path: \(answers) cached exists answers, \(Int(nanoseconds)) ns CPU each, "
                + "\(Int(seconds * 1e9 / Double(answers))) ns wall each")
        #expect(trues.load(ordering: .relaxed) == answers)
        #expect(fixture.backend.totalCalls == 1)
        #expect(nanoseconds < 5_000)
    }

    @Test("100 scale sets of 1000 VMs cost under 400 bytes of RSS per cached VM")
    func bytesPerVM() async {
        let fixture = Fixture()
        fixture.backend.update {
            $0.synthesize = { Self.realisticListing($0, count: 1_000) }
        }
        // Warm the allocator and the code paths with one scale set first, then drop it.
        _ = await fixture.exists(node(scaleSet("warmup"), 1))
        fixture.cache.invalidate(nil)
        let before = Self.residentBytes()

        for index in 0..<100 {
            _ = await fixture.exists(node(scaleSet("pool-\(index)"), 1))
        }
        await fixture.settle()
        let after = Self.residentBytes()

        let perVM = Double(after - before) / 100_000
        print(
            "memory: RSS \(before / 1024) KiB -> \(after / 1024) KiB, "
                + "\(Int(perVM)) bytes per cached VM"
        )
        #expect(fixture.cache.stats().entries == 100)
        #expect(await fixture.exists(node(scaleSet("pool-42"), 999)).0 == .success(true))
        #expect(perVM < 400)
    }
}
