import FuzzTargets

#if !FUZZING
import Foundation
#endif

/// libFuzzer's entry point: one input through `FuzzEntryPoints.grpcMessages`; a broken promise is a
/// crash, so libFuzzer saves the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    do {
        try FuzzEntryPoints.grpcMessages(UnsafeRawBufferPointer(start: data, count: size))
    } catch {
        fatalError("FuzzGRPCMessage: \(error)")
    }
    return 0
}

#if FUZZING
/// libFuzzer's driver, entered from the main that SwiftPM names after the module: SwiftPM links
/// an executable's entry point as `<module>_main`, so libFuzzer's own `main` is never used.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("FuzzGRPCMessage_main")
public func fuzzMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, fuzzOneInput)
}
#else
/// Built without libFuzzer (plain `swift build`), the target replays the files or directories
/// named on its command line and exits 1 if any input fails.
@main
struct Replay {
    static func main() {
        let paths = Array(CommandLine.arguments.dropFirst())
        exit(FuzzReplay.run(paths: paths, entry: FuzzEntryPoints.grpcMessages) == 0 ? 0 : 1)
    }
}
#endif
