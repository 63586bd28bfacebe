#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A failure of the transport itself (socket set-up, not a call), naming the syscall and errno.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    /// The operation that failed, such as `bind` or `listen`.
    public var operation: String
    /// The errno it set, or 0 when the failure was not a syscall's.
    public var errno: Int32
    /// What was being done, such as the socket path.
    public var detail: String

    /// Creates an error for a failed operation.
    public init(operation: String, errno: Int32, detail: String) {
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// `bind(/run/x.sock) failed: Permission denied (errno 13)`.
    public var description: String {
        if errno == 0 { return "\(operation)(\(detail)) failed" }
        let text = String(cString: strerror(errno))
        return "\(operation)(\(detail)) failed: \(text) (errno \(errno))"
    }
}

/// A Unix socket address: `/path` for a file, `@name` for the abstract namespace.
struct UnixAddress {
    var storage = sockaddr_un()
    var length: socklen_t = 0
    let isAbstract: Bool

    init(_ path: String) throws(TransportError) {
        storage.sun_family = sa_family_t(AF_UNIX)
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        let capacity = MemoryLayout.size(ofValue: storage.sun_path)
        var bytes = Array(path.utf8)
        isAbstract = bytes.first == UInt8(ascii: "@")
        if isAbstract {
            // The abstract namespace starts with a NUL; the name is exactly the remaining
            // bytes, so the address length counts no padding.
            bytes[0] = 0
        } else {
            bytes.append(0)
        }
        guard !path.isEmpty, bytes.count <= capacity, isAbstract || !bytes.dropLast().contains(0)
        else {
            throw TransportError(operation: "sockaddr_un", errno: ENAMETOOLONG, detail: path)
        }
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        length = socklen_t(pathOffset + (isAbstract ? bytes.count : bytes.count))
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}

enum Sockets {
    static func makeStreamSocket(detail: String) throws(TransportError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw TransportError(operation: "socket", errno: errno, detail: detail) }
        return fd
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Creates, binds, chmods and listens; a stale socket file is removed first, any other kind
    /// of file at the path is refused.
    static func listen(path: String, mode: UInt32) throws(TransportError) -> Int32 {
        let address = try UnixAddress(path)
        if !address.isAbstract {
            var info = stat()
            if lstat(path, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFSOCK else {
                    throw TransportError(
                        operation: "bind", errno: EEXIST,
                        detail: "\(path) exists and is not a socket; refusing to remove it")
                }
                // A socket file that a server still accepts on is that server's live endpoint,
                // not debris from a crash: taking it over would cut the other server off.
                if acceptsConnections(address) {
                    throw TransportError(
                        operation: "bind", errno: EADDRINUSE,
                        detail: "\(path): another server is listening on it; "
                            + "refusing to take it over")
                }
                if unlink(path) != 0 {
                    throw TransportError(operation: "unlink", errno: errno, detail: path)
                }
            }
        }
        let fd = try makeStreamSocket(detail: path)
        let bound = address.withSockaddr { bind(fd, $0, $1) }
        if bound != 0 {
            let error = errno
            close(fd)
            throw TransportError(operation: "bind", errno: error, detail: path)
        }
        if !address.isAbstract && chmod(path, mode_t(mode)) != 0 {
            let error = errno
            close(fd)
            unlink(path)
            throw TransportError(operation: "chmod", errno: error, detail: path)
        }
        if Glibc.listen(fd, 1024) != 0 {
            let error = errno
            close(fd)
            if !address.isAbstract { unlink(path) }
            throw TransportError(operation: "listen", errno: error, detail: path)
        }
        setNonBlocking(fd)
        return fd
    }

    /// Whether a server accepts connections at `address`. Non-blocking, so a listener with a
    /// full backlog (EAGAIN) counts as live instead of stalling the start.
    private static func acceptsConnections(_ address: UnixAddress) -> Bool {
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            | Int32(SOCK_NONBLOCK.rawValue)
        let fd = socket(AF_UNIX, flags, 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var result: Int32
        repeat {
            result = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        } while result != 0 && errno == EINTR
        return result == 0 || errno == EAGAIN || errno == EINPROGRESS
    }

    /// Connects a blocking socket, then makes it non-blocking for the event loop.
    static func connect(path: String) throws(TransportError) -> Int32 {
        let address = try UnixAddress(path)
        let fd = try makeStreamSocket(detail: path)
        var result: Int32
        repeat {
            result = address.withSockaddr { Glibc.connect(fd, $0, $1) }
        } while result != 0 && errno == EINTR
        if result != 0 {
            let error = errno
            close(fd)
            throw TransportError(operation: "connect", errno: error, detail: path)
        }
        setNonBlocking(fd)
        return fd
    }

    /// The uid of the process at the other end, from SO_PEERCRED.
    static func peerUID(_ fd: Int32) -> UInt32? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }, which needs _GNU_SOURCE to import.
        var credentials: (Int32, UInt32, UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        if getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0 { return nil }
        return credentials.1
    }
}
