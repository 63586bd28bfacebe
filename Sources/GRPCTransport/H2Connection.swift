internal import CNGHTTP2

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The I/O half shared by server and client connections: one socket, one nghttp2 session, both
/// touched only on the owning loop's thread.
///
/// Output is produced with `nghttp2_session_mem_send` into one buffer and written once per loop
/// turn. While more than `highWater` bytes wait for a slow reader, the connection stops reading,
/// so such a peer cannot make the process buffer without bound.
class H2Connection: LoopFDHandler, LoopFlushable {
    static let highWater = 1 << 20

    let loop: EventLoop
    let fd: Int32
    var session: OpaquePointer?
    var flushScheduled = false
    private(set) var isClosed = false
    /// Close once every queued byte has been written (after a GOAWAY or a protocol error).
    var closeWhenFlushed = false
    private var output: UnsafeMutablePointer<UInt8>
    private var outputCapacity = 64 * 1024
    private var outputStart = 0
    private var outputEnd = 0
    private var interest: UInt32 = 0

    init(loop: EventLoop, fd: Int32) {
        self.loop = loop
        self.fd = fd
        output = .allocate(capacity: outputCapacity)
    }

    deinit {
        output.deallocate()
        if let session { nghttp2_session_del(session) }
    }

    /// Registers with the loop; the session must exist and have its first frames submitted.
    func attach() {
        interest = Epoll.input | Epoll.readHangUp
        loop.register(fd, handler: self, events: interest)
        loop.scheduleFlush(self)
    }

    override func handleEvents(_ events: UInt32) {
        if isClosed { return }
        if events & (Epoll.input | Epoll.error | Epoll.hangUp | Epoll.readHangUp)
            != 0
        {
            readAvailable(events)
        }
        if isClosed { return }
        loop.scheduleFlush(self)
    }

    private func readAvailable(_ events: UInt32) {
        let buffer = loop.readBuffer
        let count = recv(fd, buffer.baseAddress, buffer.count, 0)
        if count > 0 {
            let result = nghttp2_session_mem_recv(
                session, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count)
            if result < 0 {
                // nghttp2 has queued a GOAWAY for a protocol error; send it, then close.
                closeWhenFlushed = true
                protocolError(String(cString: nghttp2_strerror(Int32(result))))
            }
        } else if count == 0 {
            close()
        } else if errno != EAGAIN && errno != EINTR {
            close()
        } else if events & (Epoll.error | Epoll.hangUp) != 0 {
            close()
        }
    }

    func flush() {
        if isClosed { return }
        while true {
            var more = false
            while outputEnd - outputStart < H2Connection.highWater {
                var data: UnsafePointer<UInt8>?
                let count = nghttp2_session_mem_send(session, &data)
                if count < 0 {
                    close()
                    return
                }
                if count == 0 { break }
                append(data!, count)
                more = outputEnd - outputStart >= H2Connection.highWater
            }
            while outputStart < outputEnd {
                let written = send(
                    fd, output + outputStart, outputEnd - outputStart, Int32(MSG_NOSIGNAL))
                if written > 0 {
                    outputStart += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else if written < 0 && errno == EAGAIN {
                    break
                } else {
                    close()
                    return
                }
            }
            if outputStart == outputEnd {
                outputStart = 0
                outputEnd = 0
            }
            if outputStart != outputEnd || !more { break }
        }
        let backlog = outputEnd - outputStart
        if backlog == 0 {
            if closeWhenFlushed
                || (nghttp2_session_want_read(session) == 0
                    && nghttp2_session_want_write(session) == 0)
            {
                close()
                return
            }
        }
        var wanted = Epoll.readHangUp
        if backlog < H2Connection.highWater { wanted |= Epoll.input }
        if backlog > 0 { wanted |= Epoll.output }
        if wanted != interest {
            interest = wanted
            loop.modify(fd, handler: self, events: wanted)
        }
    }

    private func append(_ data: UnsafePointer<UInt8>, _ count: Int) {
        if outputEnd + count > outputCapacity {
            let live = outputEnd - outputStart
            if outputStart > 0 {
                (output).update(from: output + outputStart, count: live)
                outputStart = 0
                outputEnd = live
            }
            if live + count > outputCapacity {
                var capacity = outputCapacity * 2
                while capacity < live + count { capacity *= 2 }
                let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity)
                grown.update(from: output, count: live)
                output.deallocate()
                output = grown
                outputCapacity = capacity
            }
        }
        (output + outputEnd).update(from: data, count: count)
        outputEnd += count
    }

    /// Closes the socket at once and tells the subclass; idempotent.
    func close() {
        if isClosed { return }
        isClosed = true
        loop.unregister(fd, handler: self)
        _ = Glibc.close(fd)
        connectionDidClose()
    }

    /// Called once when the socket closed, for any reason; the session still exists.
    func connectionDidClose() {}

    /// Called when nghttp2 rejected the peer's bytes.
    func protocolError(_ description: String) {}
}

/// NUL-free byte strings that live for the whole process, for header names and values passed to
/// nghttp2 with the no-copy flags.
enum StaticBytes {
    static func make(_ text: String) -> (UnsafeMutablePointer<UInt8>, Int) {
        let bytes = Array(text.utf8)
        let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: max(bytes.count, 1))
        pointer.initialize(from: bytes, count: bytes.count)
        return (pointer, bytes.count)
    }
}

/// One header entry of a response, name and value given as static or scoped bytes.
struct HeaderField {
    static let noCopy = UInt8(
        NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue)

    static func nv(
        _ name: (UnsafeMutablePointer<UInt8>, Int), _ value: (UnsafeMutablePointer<UInt8>, Int)
    ) -> nghttp2_nv {
        nghttp2_nv(name: name.0, value: value.0, namelen: name.1, valuelen: value.1, flags: noCopy)
    }

    /// An entry whose value nghttp2 copies during the submit call.
    static func nv(
        _ name: (UnsafeMutablePointer<UInt8>, Int), copying value: UnsafeMutableBufferPointer<UInt8>
    ) -> nghttp2_nv {
        nghttp2_nv(
            name: name.0, value: value.baseAddress ?? name.0, namelen: name.1,
            valuelen: value.count, flags: UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue))
    }
}

/// Header names and values used on every call, allocated once.
struct KnownHeaders: @unchecked Sendable {
    let status = StaticBytes.make(":status")
    let method = StaticBytes.make(":method")
    let path = StaticBytes.make(":path")
    let scheme = StaticBytes.make(":scheme")
    let authority = StaticBytes.make(":authority")
    let contentType = StaticBytes.make("content-type")
    let te = StaticBytes.make("te")
    let userAgent = StaticBytes.make("user-agent")
    let grpcStatus = StaticBytes.make("grpc-status")
    let grpcMessage = StaticBytes.make("grpc-message")
    let grpcTimeout = StaticBytes.make("grpc-timeout")
    let grpcPushback = StaticBytes.make("grpc-retry-pushback-ms")
    let applicationGRPC = StaticBytes.make("application/grpc")
    let trailers = StaticBytes.make("trailers")
    let post = StaticBytes.make("POST")
    let http = StaticBytes.make("http")
    let agent = StaticBytes.make("vmssd-grpc-transport/1")
    let status200 = StaticBytes.make("200")
    let status405 = StaticBytes.make("405")
    let status415 = StaticBytes.make("415")
    let codes: [(UnsafeMutablePointer<UInt8>, Int)] = (0...16).map { StaticBytes.make(String($0)) }

    static let shared = KnownHeaders()
}
