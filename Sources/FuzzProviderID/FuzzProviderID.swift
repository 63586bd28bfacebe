import FuzzTargets

#if !FUZZING
import Foundation
#endif

/// libFuzzer's entry point: one input through `FuzzEntryPoints.providerID`; a broken promise is a
/// crash, so libFuzzer saves the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    do {
        try FuzzEntryPoints.providerID(UnsafeRawBufferPointer(start: data, count: size))
    } catch {
        fatalError("FuzzProviderID: \(error)")
    }
    return 0
}

#if !FUZZING
/// Built without libFuzzer (plain `swift build`), the target replays the files or directories
/// named on its command line and exits 1 if any input fails.
@main
struct Replay {
    static func main() {
        let paths = Array(CommandLine.arguments.dropFirst())
        exit(FuzzReplay.run(paths: paths, entry: FuzzEntryPoints.providerID) == 0 ? 0 : 1)
    }
}
#endif
