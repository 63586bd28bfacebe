import AzureARM
import AzureModel
import Dispatch
import Foundation
import Synchronization
import VMSSCache

#if canImport(Glibc)
    import Glibc
#endif

// In-process measurements for `make bench`, each printing one JSON line:
//   vmssbench decode FILE [--iterations N] [--min-seconds S]
//       times ARMDecoder.decodeVirtualMachinePage on the saved page: best and median
//   vmssbench parse IDS-FILE [--iterations N]
//       times ProviderID(parsing:) in CPU time, the step every question starts with, beside a split
//       of the same text on its UTF-8 bytes (what a byte-level parser would pay to find segments)
//   vmssbench memory FILE [--scale-sets N]
//       fills an InstanceCache with N scale sets, each the saved page decoded afresh, and reports
//       the RSS it adds, as is and after malloc_trim, per cached VM

let usage = """
    usage: vmssbench decode FILE [--iterations N] [--min-seconds S]
           vmssbench parse IDS-FILE [--iterations N]
           vmssbench memory FILE [--scale-sets N]

    """

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("vmssbench: \(message)\n".utf8))
    exit(2)
}

/// The value of `--name` in `arguments`, read by `parse`; `fallback` when absent.
func option<T>(_ arguments: [String], _ name: String, _ fallback: T, _ parse: (String) -> T?) -> T {
    guard let index = arguments.firstIndex(of: name) else { return fallback }
    guard index + 1 < arguments.count, let value = parse(arguments[index + 1]) else {
        fail("\(name) needs a valid value")
    }
    return value
}

func nanoseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9
}

/// CPU time this process has used, in nanoseconds: immune to neighbours taking the cores.
func processCPUNanoseconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) * 1e9 + Double(spec.tv_nsec)
}

func decode(_ bytes: [UInt8], arguments: [String]) {
    let iterations = option(arguments, "--iterations", 200) {
        Int($0).flatMap { $0 > 0 ? $0 : nil }
    }
    let minSeconds = option(arguments, "--min-seconds", 0.0) { Double($0) }
    let clock = ContinuousClock()
    var times: [Double] = []
    var count = 0
    let began = clock.now
    let cpuBegan = processCPUNanoseconds()
    // Bounded: at most 10,000 decodes whatever --min-seconds asks.
    while times.count < 10_000
        && (times.count < iterations || nanoseconds(clock.now - began) < minSeconds * 1e9)
    {
        let start = clock.now
        do {
            let page = try ARMDecoder.decodeVirtualMachinePage(bytes)
            count = page.vms.count
        } catch {
            fail("the page does not decode: \(error)")
        }
        times.append(nanoseconds(clock.now - start))
    }
    let cpuPerDecode = (processCPUNanoseconds() - cpuBegan) / Double(times.count)
    let cpu = String(format: "%.3f", cpuPerDecode / 1e6)
    times.sort()
    let best = String(format: "%.3f", times[0] / 1e6)
    let median = String(format: "%.3f", times[times.count / 2] / 1e6)
    print(
        """
        {"decoder":"vmssd ARMDecoder","bytes":\(bytes.count),"vms":\(count),\
        "iterations":\(times.count),"best_ms":\(best),"median_ms":\(median),"cpu_ms":\(cpu)}
        """)
}

/// Serves every scale set listing from the saved page, decoded afresh on each call as vmssd
/// decodes each scale set's own response.
struct SavedPageBackend: InstanceBackend {
    let bytes: [UInt8]

    func listScaleSetVirtualMachines(_ scaleSet: ScaleSetRef) async throws(CloudError)
        -> [VirtualMachine]
    {
        do {
            return try ARMDecoder.decodeVirtualMachinePage(bytes).vms
        } catch {
            throw CloudError.fault("\(error)")
        }
    }

    func getVirtualMachine(_ vm: VirtualMachineRef) async throws(CloudError) -> VirtualMachine {
        throw CloudError.gone(code: "NotFound")
    }

    func listScaleSets(_ resourceGroup: ResourceGroupRef) async throws(CloudError)
        -> [ScaleSetSummary]
    {
        []
    }

    func privateIPAddresses(of instance: ScaleSetInstanceRef) async throws(CloudError) -> [String] {
        []
    }

    func privateIPAddresses(ofNetworkInterface id: String) async throws(CloudError) -> [String] {
        []
    }
}

/// Hands free heap pages back to the kernel (glibc `malloc_trim`, found at run time because the
/// Glibc module does not export malloc.h), so RSS afterwards is close to the live heap.
func trimHeap() {
    typealias Trim = @convention(c) (Int) -> Int32
    guard let process = dlopen(nil, RTLD_NOW), let symbol = dlsym(process, "malloc_trim") else {
        return
    }
    _ = unsafeBitCast(symbol, to: Trim.self)(0)
}

func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else {
        return 0
    }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

func memory(_ bytes: [UInt8], arguments: [String]) {
    let scaleSets = option(arguments, "--scale-sets", 100) {
        Int($0).flatMap { (1...10_000).contains($0) ? $0 : nil }
    }
    var configuration = CacheConfiguration()
    configuration.maxScaleSets = scaleSets + 1
    let cache = InstanceCache(backend: SavedPageBackend(bytes: bytes), configuration: configuration)
    let perPage: Int
    do {
        perPage = try ARMDecoder.decodeVirtualMachinePage(bytes).vms.count
    } catch {
        fail("the page does not decode: \(error)")
    }
    let rssBefore = residentBytes()
    trimHeap()
    let trimmedBefore = residentBytes()
    let answers = Atomic<Int>(0)
    for index in 0..<scaleSets {
        let text = "azure:///subscriptions/sub-bench/resourceGroups/rg-bench/providers/"
            + "Microsoft.Compute/virtualMachineScaleSets/pool-\(index)/virtualMachines/0"
        guard let id = try? ProviderID(parsing: text) else { fail("bad provider ID \(text)") }
        // One at a time, so the transient decode buffers of one listing are freed before the next.
        let done = DispatchSemaphore(value: 0)
        cache.instanceExists(NodeQuestion(providerID: id)) { result in
            if case .success(true) = result { answers.add(1, ordering: .relaxed) }
            done.signal()
        }
        guard done.wait(timeout: .now() + 30) == .success else { fail("no answer in 30 s") }
    }
    let rssAfter = residentBytes()
    trimHeap()
    let trimmedAfter = residentBytes()
    let vms = scaleSets * perPage
    print(
        """
        {"scale_sets":\(scaleSets),"vms":\(vms),\
        "answered_true":\(answers.load(ordering: .relaxed)),\
        "trimmed_rss_bytes_per_vm":\(Double(trimmedAfter - trimmedBefore) / Double(vms)),\
        "rss_bytes_per_vm":\(Double(rssAfter - rssBefore) / Double(vms))}
        """)
    withExtendedLifetime(cache) {}
}

func parse(_ bytes: [UInt8], arguments: [String]) {
    let ids = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    guard !ids.isEmpty else { fail("no provider IDs in the file") }
    let iterations = option(arguments, "--iterations", 200) {
        Int($0).flatMap { (1...100_000).contains($0) ? $0 : nil }
    }
    var parsed = 0
    var start = processCPUNanoseconds()
    for _ in 0..<iterations {
        for id in ids where (try? ProviderID(parsing: id)) != nil {
            parsed += 1
        }
    }
    let parseNanos = (processCPUNanoseconds() - start) / Double(iterations * ids.count)
    var segments = 0
    start = processCPUNanoseconds()
    for _ in 0..<iterations {
        for id in ids {
            segments += id.utf8.dropFirst(9).split(separator: UInt8(ascii: "/")).count
        }
    }
    let splitNanos = (processCPUNanoseconds() - start) / Double(iterations * ids.count)
    let parse = String(format: "%.0f", parseNanos)
    let split = String(format: "%.0f", splitNanos)
    print(
        """
        {"ids":\(ids.count),"iterations":\(iterations),"parsed":\(parsed),\
        "segments":\(segments),"provider_id_parse_ns":\(parse),"utf8_split_ns":\(split)}
        """)
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data(usage.utf8))
    exit(2)
}
guard let data = FileManager.default.contents(atPath: arguments[1]) else {
    fail("cannot read \(arguments[1])")
}
let bytes = [UInt8](data)
switch arguments[0] {
case "decode": decode(bytes, arguments: Array(arguments.dropFirst(2)))
case "memory": memory(bytes, arguments: Array(arguments.dropFirst(2)))
case "parse": parse(bytes, arguments: Array(arguments.dropFirst(2)))
default:
    FileHandle.standardError.write(Data(usage.utf8))
    exit(2)
}
