import Foundation

/// Runs a fuzz entry point over files, for the fuzz executables built without libFuzzer:
/// `FuzzX file-or-directory...` replays every input and exits non-zero on the first failure.
public enum FuzzReplay {
    /// Every regular file under the given paths (a path may be a file), sorted by path.
    public static func inputs(under paths: [String]) -> [URL] {
        var found: [URL] = []
        let manager = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if !isDirectory.boolValue {
                found.append(URL(fileURLWithPath: path))
                continue
            }
            let enumerator = manager.enumerator(
                at: URL(fileURLWithPath: path), includingPropertiesForKeys: [.isRegularFileKey])
            while let url = enumerator?.nextObject() as? URL {
                let values = try? url.resourceValues(forKeys: [.isRegularFileKey])
                if values?.isRegularFile == true { found.append(url) }
            }
        }
        return found.sorted { $0.path < $1.path }
    }

    /// Replays each input through `entry`; prints one line per failure and returns how many
    /// inputs failed.
    public static func run(
        paths: [String], entry: (UnsafeRawBufferPointer) throws -> Void
    ) -> Int {
        var failures = 0
        let files = inputs(under: paths)
        for file in files {
            guard let data = try? Data(contentsOf: file) else { continue }
            let bytes = [UInt8](data)
            do {
                try bytes.withUnsafeBytes { (raw) throws in
                    try entry(raw)
                }
            } catch {
                failures += 1
                print("FAIL \(file.path): \(error)")
            }
        }
        print("replayed \(files.count) inputs, \(failures) failed")
        return failures
    }
}
