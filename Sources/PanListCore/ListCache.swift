import Foundation

/// Per-storage listing cache with single-flight loading: concurrent identical listings share one driver call.
/// A write bumps the generation, so a listing that was in flight across a write is not stored.
actor ListCache {
    struct Key: Hashable {
        var storageID: Int
        var path: String
    }
    private var entries: [Key: (objs: [Obj], expires: ContinuousClock.Instant)] = [:]
    private var inflight: [Key: (generation: Int, task: Task<[Obj], any Error>)] = [:]
    private var generation = 0

    func list(_ key: Key, ttl: Duration?, refresh: Bool,
              load: @escaping @Sendable () async throws -> [Obj]) async throws -> [Obj] {
        if !refresh, let hit = entries[key], hit.expires > .now {
            Metrics.listingCache.hit.increment()
            return hit.objs
        }
        Metrics.listingCache.miss.increment()
        if !refresh, let running = inflight[key], running.generation == generation {
            return try await running.task.value
        }
        let startGeneration = generation
        let task = Task { try await load() }
        inflight[key] = (startGeneration, task)
        defer { if inflight[key]?.task == task { inflight[key] = nil } }
        let objs = try await task.value
        if let ttl, ttl > .zero, !objs.isEmpty, startGeneration == generation {
            entries[key] = (objs, .now + ttl)
        }
        return objs
    }

    /// Forgets the listing of `path`, and with `recursive` everything cached below it too.
    func invalidate(storageID: Int, path: String, recursive: Bool = false) {
        generation += 1
        entries[Key(storageID: storageID, path: path)] = nil
        if recursive {
            for key in entries.keys where key.storageID == storageID && VirtualPath.isWithin(key.path, path) {
                entries[key] = nil
            }
        }
    }

    func clearAll() {
        generation += 1
        entries.removeAll()
    }

    func clear(storageID: Int) {
        generation += 1
        for key in entries.keys where key.storageID == storageID { entries[key] = nil }
    }
}
