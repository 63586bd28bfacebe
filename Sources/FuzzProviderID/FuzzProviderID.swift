import FuzzTargets

/// libFuzzer's entry point: one input through `FuzzEntryPoints.providerID`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzDriver.runOne("FuzzProviderID", FuzzEntryPoints.providerID, data, size)
}

#if FUZZING
@_cdecl("FuzzProviderID_main")
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
        FuzzDriver.replayArguments(FuzzEntryPoints.providerID)
    }
}
#endif
