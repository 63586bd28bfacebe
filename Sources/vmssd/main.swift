import AzureARM
import AzureModel
import Dispatch
import Foundation
import GRPCTransport
import InstancesProto
import VMSSCache
import VMSSLog
import VMSSService

#if canImport(Glibc)
import Glibc
#endif

/// Exit codes: 0 after a clean stop, 1 when the start failed, 2 for a bad command line.
let options: Options
do {
    options = try Options(arguments: Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("vmssd: \(error)\n".utf8))
    exit(2)
}
if options.showHelp {
    print(Options.usage, terminator: "")
    exit(0)
}

let logger = Logger.standardError(
    verbosity: options.verbosity, format: Logger.Format(rawValue: options.logFormat) ?? .text)

// A client that hangs up mid-answer must not kill the server.
signal(SIGPIPE, SIG_IGN)

let daemon: Daemon
do {
    daemon = try Daemon(options: options, logger: logger)
    try daemon.start()
} catch {
    logger.error("start failed", ["error": "\(error)"])
    exit(1)
}

waitForStopSignal(logger: logger)
daemon.stop()
logger.info("stopped")
exit(0)
