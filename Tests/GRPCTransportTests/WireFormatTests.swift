import Testing

@testable import GRPCTransport

@Suite("message framing")
struct FramingTests {
    private func frame(_ message: [UInt8]) -> [UInt8] {
        MessagePrefix.framed(message)
    }

    private func read(
        _ chunks: [[UInt8]], limit: Int = 4 * 1024 * 1024
    ) -> (messages: [[UInt8]], error: FramingError?, midMessage: Bool) {
        var reader = MessageReader()
        var messages: [[UInt8]] = []
        var firstError: FramingError?
        for chunk in chunks {
            let error = chunk.withUnsafeBytes { bytes in
                reader.consume(bytes, limit: limit) { messages.append($0) }
            }
            if firstError == nil { firstError = error }
        }
        return (messages, firstError, reader.isMidMessage)
    }

    @Test("the prefix is a zero flag and a big-endian length")
    func prefixEncoding() {
        #expect(frame([1, 2, 3]) == [0, 0, 0, 0, 3, 1, 2, 3])
        let big = frame([UInt8](repeating: 7, count: 0x0102_03))
        #expect(Array(big.prefix(5)) == [0, 0, 0x01, 0x02, 0x03])
    }

    @Test("a message split byte by byte across chunks is reassembled")
    func byteByByte() {
        let wire = frame(Array("hello".utf8)) + frame([]) + frame([9])
        let result = read(wire.map { [$0] })
        #expect(result.messages == [Array("hello".utf8), [], [9]])
        #expect(result.error == nil)
        #expect(!result.midMessage)
    }

    @Test(
        "several messages in one chunk and one message over many chunks", arguments: [1, 3, 7, 64])
    func arbitrarySplits(chunkSize: Int) {
        let first = [UInt8](repeating: 1, count: 100)
        let second = [UInt8](repeating: 2, count: 33)
        let wire = frame(first) + frame(second)
        let chunks = stride(from: 0, to: wire.count, by: chunkSize).map {
            Array(wire[$0..<min($0 + chunkSize, wire.count)])
        }
        let result = read(chunks)
        #expect(result.messages == [first, second])
    }

    @Test("an oversized message is refused from its prefix, before its payload arrives")
    func oversizedFromPrefix() {
        let prefixOnly: [UInt8] = [0, 0, 0x50, 0, 0]  // 5 MiB promised, nothing sent
        let result = read([prefixOnly], limit: 4 * 1024 * 1024)
        #expect(result.error == .tooLarge(length: 5 * 1024 * 1024, limit: 4 * 1024 * 1024))
        #expect(result.error?.status.code == .resourceExhausted)
    }

    @Test("the compressed flag without an encoding is an INTERNAL error")
    func compressedFlag() {
        let result = read([[1, 0, 0, 0, 1, 42]])
        #expect(result.error == .compressed)
        #expect(result.error?.status.code == .internalError)
    }

    @Test("a stream that stops short of the promised length is detected as mid-message")
    func lyingPrefix() {
        let result = read([[0, 0, 0, 0, 10, 1, 2, 3]])
        #expect(result.messages.isEmpty)
        #expect(result.midMessage)
    }
}

@Suite("grpc-timeout")
struct TimeoutTests {
    @Test(
        "valid values parse to their duration",
        arguments: [
            ("3S", Duration.seconds(3)), ("3010m", .milliseconds(3010)), ("1H", .seconds(3600)),
            ("2M", .seconds(120)), ("250u", .microseconds(250)),
            ("99999999n", .nanoseconds(99_999_999)),
            ("0m", .zero), ("12345678S", .seconds(12_345_678)),
        ])
    func valid(text: String, expected: Duration) {
        #expect(GRPCTimeout.parse(text) == expected)
    }

    @Test(
        "malformed values are rejected",
        arguments: ["", "S", "3", "3s", "123456789S", "-1S", "1.5S", " 1S", "1S ", "1x", "abcS"])
    func malformed(text: String) {
        #expect(GRPCTimeout.parse(text) == nil)
    }

    @Test("encoding picks a unit that fits in 8 digits and never shortens the timeout")
    func encoding() {
        #expect(GRPCTimeout.encode(.milliseconds(250)) == "250000u")
        #expect(GRPCTimeout.encode(.seconds(3)) == "3000000u")
        #expect(GRPCTimeout.encode(.seconds(30)) == "30000000u")
        #expect(GRPCTimeout.encode(.seconds(300)) == "300000m")
        for duration in [Duration.milliseconds(1), .seconds(7), .seconds(86_400 * 400)] {
            let text = GRPCTimeout.encode(duration)
            let parsed = GRPCTimeout.parse(text)
            #expect(parsed != nil && parsed! >= duration)
            #expect(text.count <= 9)
        }
    }
}

@Suite("status codes and grpc-message")
struct StatusTests {
    @Test("codes carry the numbers of the gRPC specification")
    func numbers() {
        let expected: [(GRPCStatus.Code, Int32)] = [
            (.ok, 0), (.cancelled, 1), (.unknown, 2), (.invalidArgument, 3), (.deadlineExceeded, 4),
            (.notFound, 5), (.alreadyExists, 6), (.permissionDenied, 7), (.resourceExhausted, 8),
            (.failedPrecondition, 9), (.aborted, 10), (.outOfRange, 11), (.unimplemented, 12),
            (.internalError, 13), (.unavailable, 14), (.dataLoss, 15), (.unauthenticated, 16),
        ]
        for (code, number) in expected { #expect(code.rawValue == number) }
        #expect(GRPCStatus.Code.deadlineExceeded.description == "DEADLINE_EXCEEDED")
    }

    @Test("HTTP statuses without grpc-status map as the gRPC document says")
    func httpMapping() {
        #expect(GRPCStatus.fromHTTPStatus(400).code == .internalError)
        #expect(GRPCStatus.fromHTTPStatus(401).code == .unauthenticated)
        #expect(GRPCStatus.fromHTTPStatus(403).code == .permissionDenied)
        #expect(GRPCStatus.fromHTTPStatus(404).code == .unimplemented)
        #expect(GRPCStatus.fromHTTPStatus(503).code == .unavailable)
        #expect(GRPCStatus.fromHTTPStatus(415).code == .unknown)
    }

    @Test("percent-encoding escapes % and bytes outside printable ASCII only")
    func percentEncoding() {
        #expect(String(decoding: PercentEncoding.encode("a b%c"), as: UTF8.self) == "a b%25c")
        #expect(String(decoding: PercentEncoding.encode("é\n"), as: UTF8.self) == "%C3%A9%0A")
        #expect(
            String(decoding: PercentEncoding.encode("plain ~text!"), as: UTF8.self)
                == "plain ~text!")
    }

    @Test(
        "percent-encoding round-trips any message",
        arguments: [
            "", "simple", "100% sure", "ünïcødé ✓", "line\nbreak\ttab", "%%41", "🙂 emoji",
        ])
    func roundTrip(message: String) {
        #expect(PercentEncoding.decode(PercentEncoding.encode(message)) == message)
    }

    @Test("a malformed percent sequence is kept literally")
    func malformedDecoding() {
        #expect(PercentEncoding.decode(Array("50%".utf8)) == "50%")
        #expect(PercentEncoding.decode(Array("%zz%4".utf8)) == "%zz%4")
    }
}
