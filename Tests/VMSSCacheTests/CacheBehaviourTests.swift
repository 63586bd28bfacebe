import AzureModel
import Testing
import VMSSCache

@Suite("Cache behaviour")
struct CacheBehaviourTests {
    @Test("an instance missing from an old listing is refetched once for all who ask")
    func refreshOnMissCoalesces() async {
        let fixture = Fixture { $0.refreshOnMissInterval = 10 }
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1)] }
        _ = await fixture.exists(node(pool, 1))
        fixture.clock.advance(60)
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1), instanceVM(2)] }
        fixture.backend.hold()
        let answers = Answers<(Result<Bool, VerdictFailure>, AnswerInfo)>()

        for _ in 0..<50 {
            fixture.cache.instanceExists(node(pool, 2), reporting: { answers.append(($0, $1)) })
        }
        await eventually { fixture.backend.parkedCalls == 1 }
        fixture.backend.release()
        await eventually { answers.all.count == 50 }

        #expect(answers.all.allSatisfy { $0.0 == .success(true) })
        #expect(
            answers.all.filter { $0.1 == AnswerInfo(outcome: .refresh, backendCalls: 1) }.count == 1
        )
        #expect(answers.all.filter { $0.1.outcome == .coalesced }.count == 49)
        #expect(fixture.backend.calls(.listVMs) == 2)
        #expect(fixture.cache.stats().refreshes == 1)
    }

    @Test("a question joining a read that started long before it rereads before saying gone")
    func joinedOldReadIsNotEvidence() async {
        let fixture = Fixture { $0.refreshOnMissInterval = 10 }
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1)] }
        fixture.backend.hold()
        let answers = Answers<(Result<Bool, VerdictFailure>, AnswerInfo)>()

        fixture.cache.instanceExists(node(pool, 1), reporting: { answers.append(($0, $1)) })
        await eventually { fixture.backend.parkedCalls == 1 }
        fixture.clock.advance(20)
        fixture.cache.instanceExists(node(pool, 2), reporting: { answers.append(($0, $1)) })
        fixture.backend.release()
        await eventually { answers.all.count == 2 }

        let late = answers.all.first { $0.1.outcome == .coalesced }
        #expect(late?.0 == .success(false))
        #expect(late?.1.backendCalls == 1)
        #expect(fixture.backend.calls(.listVMs) == 2)
    }

    @Test("a listing fetched within the refresh-on-miss interval is the evidence")
    func recentListingIsEvidence() async {
        let fixture = Fixture { $0.refreshOnMissInterval = 10 }
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1)] }
        _ = await fixture.exists(node(pool, 1))
        fixture.clock.advance(8)

        let (verdict, info) = await fixture.exists(node(pool, 9))

        #expect(verdict == .success(false))
        #expect(info == AnswerInfo(outcome: .hit, backendCalls: 0))
        #expect(fixture.backend.calls(.listVMs) == 1)
    }

    @Test("a listing older than the node is refetched before it counts as evidence")
    func listingOlderThanNode() async {
        let fixture = Fixture()
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1)] }
        _ = await fixture.exists(node(pool, 1))
        fixture.clock.advance(5)
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1), instanceVM(2)] }

        let (verdict, _) = await fixture.exists(node(pool, 2, createdAt: fixture.clock.now - 2))

        #expect(verdict == .success(true))
        #expect(fixture.backend.calls(.listVMs) == 2)
    }

    @Test("an entry asked about in its last fifth of life is refreshed once in the background")
    func refreshAhead() async {
        let fixture = Fixture { $0.listingTTL = 600 }
        let pool = scaleSet("pool")
        fixture.backend.update { $0.scaleSets[pool] = [instanceVM(1)] }
        _ = await fixture.exists(node(pool, 1))
        fixture.clock.advance(500)
        fixture.backend.hold()

        let (first, firstInfo) = await fixture.exists(node(pool, 1))
        let (second, secondInfo) = await fixture.exists(node(pool, 1))
        fixture.backend.release()
        await fixture.settle()
        fixture.clock.advance(200)
        let (later, laterInfo) = await fixture.exists(node(pool, 1))

        #expect(first == .success(true) && second == .success(true) && later == .success(true))
        #expect(firstInfo == AnswerInfo(outcome: .hit, backendCalls: 1))
        #expect(secondInfo == AnswerInfo(outcome: .hit, backendCalls: 0))
        // Past the first listing's expiry, the refreshed one answers without a call.
        #expect(laterInfo == AnswerInfo(outcome: .hit, backendCalls: 0))
        #expect(fixture.backend.calls(.listVMs) == 2)
        #expect(fixture.cache.stats().refreshes == 1)
    }

    @Test("the least recently asked scale set goes first when the bound is reached")
    func lruBound() async {
        let fixture = Fixture { $0.maxScaleSets = 3 }
        let names = ["a", "b", "c", "d"]
        fixture.backend.update { cloud in
            for name in names { cloud.scaleSets[scaleSet(name)] = [instanceVM(1)] }
        }

        for name in names.prefix(3) { _ = await fixture.exists(node(scaleSet(name), 1)) }
        _ = await fixture.exists(node(scaleSet("a"), 1))
        _ = await fixture.exists(node(scaleSet("d"), 1))
        let entries = fixture.cache.stats().entries
        let (a, aInfo) = await fixture.exists(node(scaleSet("a"), 1))
        let (b, bInfo) = await fixture.exists(node(scaleSet("b"), 1))

        #expect(entries == 3)
        #expect(a == .success(true) && b == .success(true))
        #expect(aInfo.backendCalls == 0)
        #expect(bInfo == AnswerInfo(outcome: .miss, backendCalls: 1))
        #expect(fixture.backend.calls(.listVMs) == 5)
    }

    @Test("invalidating a scale set makes the next question read it again")
    func invalidate() async {
        let fixture = Fixture()
        let pools = [scaleSet("a"), scaleSet("b")]
        fixture.backend.update { cloud in
            for pool in pools { cloud.scaleSets[pool] = [instanceVM(1)] }
        }
        for pool in pools { _ = await fixture.exists(node(pool, 1)) }

        let droppedOne = fixture.cache.invalidate(pools[0])
        let droppedNone = fixture.cache.invalidate(scaleSet("unknown"))
        _ = await fixture.exists(node(pools[0], 1))
        _ = await fixture.exists(node(pools[1], 1))
        let droppedAll = fixture.cache.invalidate(nil)

        #expect(droppedOne == 1)
        #expect(droppedNone == 0)
        #expect(droppedAll == 2)
        #expect(fixture.backend.calls(.listVMs) == 3)
        #expect(fixture.cache.stats().entries == 0)
    }

    @Test("concurrent questions about one standalone VM make one GET")
    func standaloneSingleFlight() async {
        let fixture = Fixture()
        let ref = VirtualMachineRef(resourceGroup: group, name: "vm-a")
        fixture.backend.update {
            $0.machines[ref] = VirtualMachine(name: "vm-a", provisioningState: .succeeded)
        }
        fixture.backend.hold()
        let answers = Answers<Result<Bool, VerdictFailure>>()

        for _ in 0..<20 { fixture.cache.instanceExists(machine("vm-a")) { answers.append($0) } }
        await eventually { fixture.backend.parkedCalls == 1 }
        fixture.backend.release()
        await eventually { answers.all.count == 20 }

        #expect(answers.all.allSatisfy { $0 == .success(true) })
        #expect(fixture.backend.calls(.getVM) == 1)
    }
}
