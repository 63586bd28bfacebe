internal import CNGHTTP2
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The epoll event bits, spelled out because the C enum does not import everywhere.
enum Epoll {
    static let input: UInt32 = 0x001
    static let output: UInt32 = 0x004
    static let error: UInt32 = 0x008
    static let hangUp: UInt32 = 0x010
    static let readHangUp: UInt32 = 0x2000
}

/// Something registered with an event loop for readiness events on one file descriptor.
class LoopFDHandler {
    func handleEvents(_ events: UInt32) {}
}

/// Something that fires at a point in time on its loop; the loop keeps it in an intrusive heap.
protocol LoopTimer: AnyObject {
    var timerDeadline: ContinuousClock.Instant { get }
    /// Position in the loop's heap, -1 when not scheduled; maintained by the loop.
    var timerIndex: Int { get set }
    func timerFired()
}

/// Something with buffered output that the loop flushes once at the end of a turn.
protocol LoopFlushable: AnyObject {
    var flushScheduled: Bool { get set }
    func flush()
}

/// One thread running epoll: it owns the file descriptors registered with it, runs tasks handed
/// over from other threads (woken through an eventfd), fires timers and flushes output once per
/// turn so that many answers leave in one write.
final class EventLoop: @unchecked Sendable {
    let name: String
    private let epollFD: Int32
    private let wakeFD: Int32
    private let threadID = Atomic<UInt>(0)
    private var thread: pthread_t?
    private let tasks = Mutex<(queue: [() -> Void], ended: Bool)>(([], false))
    private var runningTasks: [() -> Void] = []
    private var handlers: [UnsafeMutableRawPointer: LoopFDHandler] = [:]
    private var timers: [LoopTimer] = []
    private var toFlush: [LoopFlushable] = []
    private var stopRequested = false
    /// Checked once per turn on the loop thread; returning true ends the loop.
    var shouldExit: (() -> Bool)?
    /// Called once per turn before waiting, on the loop thread.
    var onTurn: (() -> Void)?
    /// A shared receive buffer: every connection on this loop reads into it in turn.
    let readBuffer: UnsafeMutableRawBufferPointer

    init(name: String) throws(TransportError) {
        self.name = name
        epollFD = cnghttp2_epoll_create()
        if epollFD < 0 {
            throw TransportError(operation: "epoll_create1", errno: errno, detail: name)
        }
        wakeFD = cnghttp2_eventfd()
        if wakeFD < 0 {
            let error = errno
            close(epollFD)
            throw TransportError(operation: "eventfd", errno: error, detail: name)
        }
        readBuffer = .allocate(byteCount: 256 * 1024, alignment: 16)
        _ = cnghttp2_epoll_ctl(epollFD, 1, wakeFD, Epoll.input, nil)
    }

    deinit {
        close(wakeFD)
        close(epollFD)
        readBuffer.deallocate()
    }

    /// True on this loop's own thread.
    @inline(__always)
    var inLoop: Bool {
        let id = threadID.load(ordering: .relaxed)
        return id != 0 && pthread_equal(pthread_self(), pthread_t(id)) != 0
    }

    /// Starts the loop's thread; returns once the thread runs.
    func start() throws(TransportError) {
        let box = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        let result = pthread_create(
            &tid, nil,
            { argument in
                let loop = Unmanaged<EventLoop>.fromOpaque(argument!).takeRetainedValue()
                loop.threadMain()
                return nil
            }, box)
        if result != 0 {
            Unmanaged<EventLoop>.fromOpaque(box).release()
            throw TransportError(operation: "pthread_create", errno: result, detail: name)
        }
        thread = tid
        while threadID.load(ordering: .acquiring) == 0 { sched_yield() }
    }

    /// Waits for the loop's thread to end; never call it on the loop itself.
    func join() {
        precondition(!inLoop, "an event loop cannot join itself")
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    /// Asks the loop to end after the current turn.
    func stop() {
        execute { [self] in stopRequested = true }
    }

    /// Runs `task` on the loop thread soon; callable from any thread.
    func execute(_ task: @escaping () -> Void) {
        let wasEmpty = tasks.withLock { state in
            // A loop that has ended drops late work, such as an answer to a closed connection.
            if state.ended { return false }
            state.queue.append(task)
            return state.queue.count == 1
        }
        // One wake-up per batch: the loop drains the whole queue when it wakes.
        if wasEmpty { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    // MARK: - Loop-thread API

    func register(_ fd: Int32, handler: LoopFDHandler, events: UInt32) {
        handlers[Unmanaged.passUnretained(handler).toOpaque()] = handler
        _ = cnghttp2_epoll_ctl(epollFD, 1, fd, events, Unmanaged.passUnretained(handler).toOpaque())
    }

    func modify(_ fd: Int32, handler: LoopFDHandler, events: UInt32) {
        _ = cnghttp2_epoll_ctl(epollFD, 3, fd, events, Unmanaged.passUnretained(handler).toOpaque())
    }

    func unregister(_ fd: Int32, handler: LoopFDHandler) {
        _ = cnghttp2_epoll_ctl(epollFD, 2, fd, 0, nil)
        handlers[Unmanaged.passUnretained(handler).toOpaque()] = nil
    }

    func scheduleFlush(_ target: LoopFlushable) {
        if !target.flushScheduled {
            target.flushScheduled = true
            toFlush.append(target)
        }
    }

    func schedule(_ timer: LoopTimer) {
        if timer.timerIndex >= 0 { return }
        timer.timerIndex = timers.count
        timers.append(timer)
        siftUp(timers.count - 1)
    }

    func cancel(_ timer: LoopTimer) {
        let index = timer.timerIndex
        guard index >= 0 && index < timers.count && timers[index] === timer else { return }
        timer.timerIndex = -1
        let last = timers.removeLast()
        if index < timers.count {
            timers[index] = last
            last.timerIndex = index
            siftDown(index)
            siftUp(last.timerIndex)
        }
    }

    private func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            if timers[parent].timerDeadline <= timers[child].timerDeadline { break }
            timers.swapAt(parent, child)
            timers[parent].timerIndex = parent
            timers[child].timerIndex = child
            child = parent
        }
    }

    private func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = parent * 2 + 1
            if left >= timers.count { break }
            var smallest = left
            let right = left + 1
            if right < timers.count && timers[right].timerDeadline < timers[left].timerDeadline {
                smallest = right
            }
            if timers[parent].timerDeadline <= timers[smallest].timerDeadline { break }
            timers.swapAt(parent, smallest)
            timers[parent].timerIndex = parent
            timers[smallest].timerIndex = smallest
            parent = smallest
        }
    }

    private func threadMain() {
        name.withCString { cnghttp2_set_thread_name($0) }
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        run()
        tasks.withLock { state in
            state.ended = true
            state.queue.removeAll()
        }
        toFlush.removeAll()
        timers.removeAll()
        handlers.removeAll()
    }

    private func run() {
        var events = [UInt32](repeating: 0, count: 128)
        var pointers = [UnsafeMutableRawPointer?](repeating: nil, count: 128)
        while true {
            runTasks()
            fireTimers()
            flushAll()
            onTurn?()
            flushAll()
            if stopRequested || (shouldExit?() ?? false) { break }
            let timeout = nextTimeoutMilliseconds()
            let count = events.withUnsafeMutableBufferPointer { events in
                pointers.withUnsafeMutableBufferPointer { pointers in
                    cnghttp2_epoll_wait(
                        epollFD, events.baseAddress, pointers.baseAddress, 128, timeout)
                }
            }
            if count < 0 { continue }  // EINTR
            for index in 0..<Int(count) {
                guard let pointer = pointers[index] else {
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                    continue
                }
                // Handlers unregistered earlier in this batch are no longer in the table.
                guard let handler = handlers[pointer] else { continue }
                handler.handleEvents(events[index])
            }
        }
    }

    private func runTasks() {
        tasks.withLock { state in
            if state.queue.isEmpty { return }
            swap(&state.queue, &runningTasks)
        }
        if runningTasks.isEmpty { return }
        for task in runningTasks { task() }
        runningTasks.removeAll(keepingCapacity: true)
    }

    private func fireTimers() {
        guard !timers.isEmpty else { return }
        let now = ContinuousClock.now
        while let first = timers.first, first.timerDeadline <= now {
            cancel(first)
            first.timerFired()
        }
    }

    private func flushAll() {
        var index = 0
        while index < toFlush.count {
            let target = toFlush[index]
            target.flushScheduled = false
            target.flush()
            index += 1
        }
        toFlush.removeAll(keepingCapacity: true)
    }

    private func nextTimeoutMilliseconds() -> Int32 {
        guard let first = timers.first else { return -1 }
        let remaining = ContinuousClock.now.duration(to: first.timerDeadline)
        let (seconds, attoseconds) = remaining.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let milliseconds =
            seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }
}
