#if canImport(Glibc)
import Glibc
#endif

/// What every fuzz executable does around its one entry point: run an input and trap on a broken
/// promise, hand control to libFuzzer when built for fuzzing, or replay files otherwise.
public enum FuzzDriver {
    /// Runs one input through `entry`; a thrown failure traps, so libFuzzer keeps the input.
    public static func runOne(
        _ target: String, _ entry: (UnsafeRawBufferPointer) throws -> Void,
        _ data: UnsafePointer<UInt8>?, _ size: Int
    ) -> CInt {
        do {
            try entry(UnsafeRawBufferPointer(start: data, count: size))
        } catch {
            fatalError("\(target): \(error)")
        }
        return 0
    }

    #if FUZZING
    /// Enters libFuzzer's driver with the process's arguments.
    public static func runLibFuzzer(
        _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
        _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt {
        var count = argc
        var arguments = argv
        return runFuzzerDriver(&count, &arguments, testOneInput)
    }
    #else
    /// Replays the files or directories named on the command line; exits 1 if any input fails.
    public static func replayArguments(
        _ entry: (UnsafeRawBufferPointer) throws -> Void
    ) -> Never {
        let paths = Array(CommandLine.arguments.dropFirst())
        exit(FuzzReplay.run(paths: paths, entry: entry) == 0 ? 0 : 1)
    }
    #endif
}

#if FUZZING
/// libFuzzer's driver. SwiftPM links an executable's entry point as `<module>_main`, so
/// libFuzzer's own `main` is never used and each fuzz executable calls this from that symbol.
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif
