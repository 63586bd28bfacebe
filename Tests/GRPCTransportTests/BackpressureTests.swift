import Testing

@testable import GRPCTransport

#if canImport(Glibc)
    import Glibc
#endif

@Suite("slow readers")
struct BackpressureTests {
    private func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [
            UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type,
            flags, UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF),
            UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF),
        ] + payload
    }

    /// An HPACK literal header field without indexing, for names and values under 127 bytes.
    private func literal(_ name: String, _ value: String) -> [UInt8] {
        [0] + [UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)]
            + Array(value.utf8)
    }

    @Test("a peer that sends requests but never reads stops being read from")
    func neverReads() async throws {
        let server = try RunningServer()
        defer { server.stop() }
        let fd = try Sockets.connect(path: server.path)
        defer { close(fd) }
        var opening = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        opening += frame(type: 4, flags: 0, stream: 0, [0, 4, 0x7F, 0xFF, 0xFF, 0xFF])
        opening += frame(type: 8, flags: 0, stream: 0, [0x7F, 0xFF, 0, 0])
        let headerBlock =
            literal(":method", "POST") + literal(":scheme", "http")
            + literal(":path", "/x.Y/Echo") + literal("content-type", "application/grpc")
        let payload = MessagePrefix.framed([UInt8](repeating: 0x5A, count: 16_000))

        var accepted = 0
        var pending = opening
        var stream: UInt32 = 1
        // Writes until the server has refused 100 tries in a row, 10 ms apart (or 4000 requests
        // went in, or 20 s passed): judged by tries, since other suites running at the same
        // time can hold this test's thread for longer than any fixed period.
        let deadline = ContinuousClock.now + .seconds(20)
        var refusedInARow = 0
        while ContinuousClock.now < deadline && stream < 4000 && refusedInARow < 100 {
            if pending.isEmpty {
                pending =
                    frame(type: 1, flags: 4, stream: stream, headerBlock)
                    + frame(type: 0, flags: 1, stream: stream, payload)
                stream += 2
            }
            let written = pending.withUnsafeBytes {
                send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                accepted += written
                pending.removeFirst(written)
                refusedInARow = 0
            } else {
                refusedInARow += 1
                try await Task.sleep(for: .milliseconds(10))
            }
        }

        // 2000 requests of 16 kB would be 32 MB; the server stops reading after about 1 MiB
        // of unsent answers, so only that plus the kernel's socket buffers gets through.
        #expect(accepted < 12 * 1024 * 1024, "the server kept reading: \(accepted) bytes")
        #expect(accepted > 1024 * 1024)
        let client = try server.client()
        defer { client.close() }
        #expect(try await client.unary(path: "/x.Y/Echo", request: [1]) == [1])
    }
}
