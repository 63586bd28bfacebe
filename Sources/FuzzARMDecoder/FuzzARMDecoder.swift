import FuzzTargets

/// libFuzzer's entry point: one input through `FuzzEntryPoints.armDecoder`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzDriver.runOne("FuzzARMDecoder", FuzzEntryPoints.armDecoder, data, size)
}

#if FUZZING
@_cdecl("FuzzARMDecoder_main")
public func fuzzMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    FuzzDriver.runLibFuzzer(argc, argv, fuzzOneInput)
}
#else
/// Built without libFuzzer (plain `swift build`), the target replays the inputs it is given.
@main
struct Replay {
    static func main() {
        FuzzDriver.replayArguments(FuzzEntryPoints.armDecoder)
    }
}
#endif
