import AzureModel
import Testing
import VMSSCache

@Suite("Existence verdicts")
struct ExistenceTests {
    @Test("200 concurrent questions about one cold scale set make one list call")
    func coldScaleSetSingleFlight() async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = (0..<200).map { instanceVM($0) } }
        fixture.backend.hold()
        let answers = Answers<Result<Bool, VerdictFailure>>()

        for id in 0..<200 {
            fixture.cache.instanceExists(node(pool, id)) { answers.append($0) }
        }
        await eventually { fixture.backend.parkedCalls == 1 }
        let waiting = fixture.cache.stats()
        fixture.backend.release()
        await eventually { answers.all.count == 200 }

        #expect(answers.all.count == 200)
        #expect(answers.all.allSatisfy { $0 == .success(true) })
        #expect(fixture.backend.calls(.listVMs) == 1)
        #expect(waiting.coalescedWaiters == 199)
        #expect(waiting.readsInFlight == 1)
    }

    @Test("100 nodes of a deleted scale set asked every 5 s make one call per negative TTL")
    func deletedScaleSetNegativeEntry() async {
        let fixture = Fixture { $0.negativeTTL = 120 }
        let deleted = scaleSet("deleted")
        var verdicts: [Result<Bool, VerdictFailure>] = []

        for _ in 0..<12 {
            for id in 0..<100 {
                verdicts.append(await fixture.exists(node(deleted, id)).0)
            }
            fixture.clock.advance(5)
        }

        #expect(verdicts.count == 1_200)
        #expect(verdicts.allSatisfy { $0 == .success(false) })
        #expect(fixture.backend.calls(.listVMs) == 1)
        #expect(fixture.cache.stats().goneHits == 1_199)
        fixture.clock.advance(60)
        let (after, info) = await fixture.exists(node(deleted, 7))
        #expect(after == .success(false))
        #expect(info == AnswerInfo(outcome: .miss, backendCalls: 1))
        #expect(fixture.backend.calls(.listVMs) == 2)
    }

    @Test("a throttled backend behind a warm cache serves stale true and never false")
    func throttledStaleServe() async {
        let fixture = Fixture { $0.listingTTL = 600 }
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1)] }
        #expect(await fixture.exists(node(pool, 1)).0 == .success(true))

        fixture.clock.advance(700)
        let until = fixture.clock.now + 30
        fixture.backend.update { $0.failure = .throttled(until: until) }
        let (present, presentInfo) = await fixture.exists(node(pool, 1))
        let (absent, _) = await fixture.exists(node(pool, 2))

        #expect(present == .success(true))
        #expect(presentInfo.outcome == .stale)
        guard case .failure(.unavailable(_, let retryAfter)) = absent else {
            Issue.record("expected unavailable, got \(absent)")
            return
        }
        #expect(retryAfter == 30)
        // One failing call; the throttle gate keeps the second question off ARM.
        #expect(fixture.backend.calls(.listVMs) == 2)
        #expect(fixture.cache.stats().staleServes == 1)
    }

    @Test("stale serves stop at maxStale past expiry")
    func staleServeBound() async {
        let fixture = Fixture {
            $0.listingTTL = 600
            $0.maxStale = 300
        }
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1)] }
        _ = await fixture.exists(node(pool, 1))

        fixture.clock.advance(1_000)
        fixture.backend.update { $0.failure = .transient("connection reset") }
        let (verdict, _) = await fixture.exists(node(pool, 1))

        #expect(
            verdict
                == .failure(
                    .unavailable(
                        "scale set sub-1/rg-nodes/pool: connection reset",
                        retryAfterSeconds: nil)))
        #expect(fixture.backend.calls(.listVMs) == 2)
    }

    @Test(
        "a fault or transient failure gives unavailable, not false",
        arguments: [CloudError.fault("AuthorizationFailed"), .transient("HTTP 503")]
    )
    func failuresAreUnavailable(error: CloudError) async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        fixture.backend.update { $0.failure = error }

        let (cold, _) = await fixture.exists(node(pool, 1))
        let (standalone, _) = await fixture.exists(machine("vm-a"))

        guard case .failure(.unavailable(_, nil)) = cold,
            case .failure(.unavailable(_, nil)) = standalone
        else {
            Issue.record("expected unavailable, got \(cold) and \(standalone)")
            return
        }
        #expect(fixture.backend.calls(.listVMs) == 1)
        #expect(fixture.backend.calls(.getVM) == 1)
    }

    @Test("a gone entry is not stretched past its TTL while the cloud fails")
    func goneEntryNeverStale() async {
        let fixture = Fixture { $0.negativeTTL = 120 }
        let deleted = scaleSet("deleted")
        #expect(await fixture.exists(node(deleted, 1)).0 == .success(false))

        fixture.clock.advance(121)
        fixture.backend.update { $0.failure = .transient("timeout") }
        let (verdict, _) = await fixture.exists(node(deleted, 1))

        #expect(verdict != .success(false))
        #expect(verdict != .success(true))
        #expect(fixture.backend.calls(.listVMs) == 2)
    }

    @Test("a node re-created after the gone entry was written is not declared gone")
    func recreatedScaleSetAfterGoneEntry() async {
        let fixture = Fixture { $0.negativeTTL = 120 }
        let pool = scaleSet("pool")
        #expect(await fixture.exists(node(pool, 0)).0 == .success(false))

        fixture.clock.advance(30)
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(0)] }
        let createdAt = fixture.clock.now - 10
        let (recreated, info) = await fixture.exists(node(pool, 0, createdAt: createdAt))
        let (oldNode, _) = await fixture.exists(node(pool, 5, createdAt: createdAt - 100))

        #expect(recreated == .success(true))
        #expect(info.backendCalls == 1)
        #expect(fixture.backend.calls(.listVMs) == 2)
        // The fresh listing replaced the gone entry; an instance it lacks is gone.
        #expect(oldNode == .success(false))
        #expect(fixture.backend.calls(.listVMs) == 2)
    }

    @Test("without a creation time the same question gets the cached gone")
    func goneEntryWithoutCreationTime() async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        _ = await fixture.exists(node(pool, 0))
        fixture.clock.advance(30)
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(0)] }

        let (verdict, info) = await fixture.exists(node(pool, 0))

        #expect(verdict == .success(false))
        #expect(info == AnswerInfo(outcome: .goneHit, backendCalls: 0))
        #expect(fixture.backend.calls(.listVMs) == 1)
    }

    @Test("a node younger than the grace period is never declared gone")
    func newNodeGrace() async {
        let fixture = Fixture { $0.newNodeGrace = 300 }
        let deleted = scaleSet("deleted")
        _ = await fixture.exists(node(deleted, 1))
        fixture.clock.advance(5)

        let (young, _) = await fixture.exists(
            node(deleted, 1, createdAt: fixture.clock.now - 400 + 200))
        let (old, _) = await fixture.exists(node(deleted, 1, createdAt: fixture.clock.now - 400))

        #expect(young == .success(true))
        #expect(old == .success(false))
        #expect(fixture.backend.calls(.listVMs) == 1)
    }

    @Test("an instance in provisioning state Deleting does not exist")
    func deletingInstance() async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        let vm = VirtualMachine(name: "vm-d", provisioningState: .deleting)
        fixture.backend.update {
            $0.scaleSets[pool] = [instanceVM(1, provisioning: .deleting, power: nil)]
            $0.machines[VirtualMachineRef(resourceGroup: group, name: "vm-d")] = vm
        }

        #expect(await fixture.exists(node(pool, 1)).0 == .success(false))
        #expect(await fixture.exists(machine("vm-d")).0 == .success(false))
        #expect(fixture.backend.totalCalls == 2)
    }

    @Test("a standalone VM that answers gone does not exist, and the gone is cached")
    func standaloneGone() async {
        let fixture = Fixture()

        let first = await fixture.exists(machine("vm-x"))
        let second = await fixture.exists(machine("VM-X"))

        #expect(first.0 == .success(false))
        #expect(second.0 == .success(false))
        #expect(second.1.outcome == .goneHit)
        #expect(fixture.backend.calls(.getVM) == 1)
    }

    @Test("an unmanaged node exists and an uninitialised one is a failed precondition")
    func providerIDKinds() async {
        let fixture = Fixture()

        let unmanaged = await fixture.exists(NodeQuestion(providerID: .unmanaged("kind://x/y")))
        let empty = await fixture.exists(NodeQuestion(providerID: .empty))

        #expect(unmanaged.0 == .success(true))
        guard case .failure(.failedPrecondition) = empty.0 else {
            Issue.record("expected failedPrecondition, got \(empty.0)")
            return
        }
        #expect(fixture.backend.totalCalls == 0)
    }

    @Test("a cached answer completes synchronously, before the call returns")
    func hotPathIsSynchronous() async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1)] }
        _ = await fixture.exists(node(pool, 1))
        let answers = Answers<Result<Bool, VerdictFailure>>()

        fixture.cache.instanceExists(node(pool, 1)) { answers.append($0) }

        #expect(answers.all == [.success(true)])
        #expect(fixture.cache.stats().hits == 1)
    }
}
