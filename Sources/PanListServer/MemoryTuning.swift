#if canImport(Glibc)
import Glibc
#endif

/// Process-wide memory settings for a long-running server.
public enum MemoryTuning {
    /// glibc gives every thread that allocates its own malloc arena (up to 8 per core). Buffers of
    /// streamed downloads are allocated on one thread and freed on another, so with many arenas freed
    /// memory is scattered and RSS creeps up (measured: 100 proxied downloads grew RSS by ~12 MiB/s;
    /// with 2 arenas it stays flat). Call before threads start; `MALLOC_ARENA_MAX` and
    /// `MALLOC_MMAP_THRESHOLD_` in the environment win.
    public static func apply() {
        #if canImport(Glibc)
        if getenv("MALLOC_ARENA_MAX") == nil {
            let cores = Int32(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
            _ = glibcMallopt(-8 /* M_ARENA_MAX */, min(8, max(2, cores)))
        }
        // Big buffers (4 MiB upload batches, 16 MiB slices) are mmapped and unmapped when freed, instead of
        // glibc raising its threshold after the first ones and keeping them in the heap, where they stay in RSS.
        // Not lower: the 512 KiB download chunks would then each be a fresh mapping, and page faults and
        // zeroing cost about 40% of a local download's speed (measured).
        if getenv("MALLOC_MMAP_THRESHOLD_") == nil {
            _ = glibcMallopt(-3 /* M_MMAP_THRESHOLD */, 2 << 20)
        }
        #endif
    }
}

#if canImport(Glibc)
/// `int mallopt(int param, int value)` from <malloc.h>, which the Glibc module does not export.
@_silgen_name("mallopt")
private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
#endif
