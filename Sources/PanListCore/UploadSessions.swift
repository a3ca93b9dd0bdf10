import Foundation

/// A resumable upload (tus, or OpenList's chunked routes): a row in the store, so that it survives a
/// restart and any instance can take the next chunk where the spool is shared. Column names are the JSON
/// keys (snake_case).
public struct UploadSession: Sendable, Codable, Equatable {
    public enum State: Int, Sendable, Codable { case open = 0, complete = 1, terminated = 2 }
    public var id: String
    /// "tus" or "multipart".
    public var proto: String
    public var creator_id: Int
    /// The target folder and name, absolute (virtual) paths.
    public var dir: String
    public var name: String
    /// The declared size; -1 while deferred (tus `Upload-Defer-Length`).
    public var size: Int64
    /// Bytes received and kept so far (the tus offset).
    public var received: Int64
    /// Hashes the client declared up front, lower-case hex ("" when not).
    public var md5: String
    public var sha1: String
    public var sha256: String
    public var modified_ms: Int64
    public var mime: String
    public var overwrite: Bool
    /// tus `Upload-Metadata` as the client sent it (answered back on HEAD).
    public var metadata: String
    /// The file that holds the received bytes (absolute): a staging file beside the target (Local) or one
    /// in the spool folder; `instance` holds it when the spool is this instance's own ("" when the file is in
    /// a storage, which instances share).
    public var spool: String
    /// OpenList chunked uploads: the chunk size (chunk i starts at i × chunk_size); 0 for tus.
    public var chunk_size: Int64
    /// A streamed upload (no file: slices go to the cloud as the bytes arrive): the cloud session's state and
    /// the slices it acknowledged, as `ResumableUploads.Streamed` JSON; "" otherwise.
    public var upstream: String
    public var instance: String
    public var state: Int
    /// A PATCH (or chunk) that holds the session: its token and until when (store clock, ms); "" and 0 when free.
    public var writer: String
    public var writer_until_ms: Int64
    public var created_ms: Int64
    public var expires_ms: Int64

    public init(id: String, proto: String, creator: Int, dir: String, name: String, size: Int64, spool: String,
                instance: String, expiresMs: Int64) {
        self.id = id; self.proto = proto; creator_id = creator; self.dir = dir; self.name = name; self.size = size
        received = 0; md5 = ""; sha1 = ""; sha256 = ""; modified_ms = 0; mime = ""; overwrite = true; metadata = ""
        self.spool = spool; chunk_size = 0; upstream = ""; self.instance = instance; state = State.open.rawValue; writer = ""; writer_until_ms = 0
        created_ms = Int64(Date().timeIntervalSince1970 * 1000); expires_ms = expiresMs
    }

    public var sessionState: State { State(rawValue: state) ?? .open }
    public var path: String { dir == "/" ? "/" + name : dir + "/" + name }
    /// OpenList chunked uploads: how many chunks make the file.
    public var chunkCount: Int { chunk_size > 0 && size > 0 ? Int((size + chunk_size - 1) / chunk_size) : 0 }
}

/// What a request that wants to write one chunk of a chunked upload learns.
public enum ChunkClaim: Sendable, Equatable {
    /// This request writes it.
    case claimed
    /// Already stored (a resend): nothing to write.
    case done
    /// Another request is writing it now.
    case busy
}

/// How upload sessions are kept (implemented by the store).
public protocol UploadSessionStore: Sendable {
    func insertUploadSession(_ s: UploadSession) async throws
    func uploadSession(id: String) async throws -> UploadSession?
    /// Open sessions of `creator` not expired yet.
    func openUploadSessions(creator: Int) async throws -> Int
    /// Takes the session for one write at `offset`: only when it is open, not expired, at that offset and held by
    /// nobody (or its holder's time ran out). Of two concurrent writers one gets it. Returns the session as taken.
    func takeUploadSession(id: String, at offset: Int64, writer: String, forMs: Int64) async throws -> UploadSession?
    /// The holder's write ended: the offset becomes `offset` (when `writer` still holds it), the hold is let go,
    /// and the expiry moves to `expiresMs`. Returns false when the session was not this writer's any more.
    func releaseUploadSession(id: String, writer: String, offset: Int64, expiresMs: Int64) async throws -> Bool
    /// The holder is still writing: its hold lasts `forMs` more. False when it is not the holder any more.
    func extendUploadSession(id: String, writer: String, forMs: Int64) async throws -> Bool
    /// Lets go of the holds and chunk claims whose writer starts with `writerPrefix` but not with `except`
    /// (a previous run of this instance, killed mid-request). Returns how many.
    func releaseUploadHolds(writerPrefix: String, except: String) async throws -> Int
    /// A streamed upload's cloud state after a slice went (only while `writer` holds the session).
    func setUploadSessionUpstream(id: String, writer: String, upstream: String) async throws -> Bool
    /// Moves the expiry of an open session (a chunk arrived).
    func touchUploadSession(id: String, expiresMs: Int64) async throws
    /// The open session of `creator` with that protocol, target and size (OpenList's resume lookup).
    func findUploadSession(creator: Int, proto: String, dir: String, name: String, size: Int64) async throws -> UploadSession?
    /// Chunked uploads: claims chunk `index` of an open session for one writer (a claim whose time ran out can
    /// be taken over). A session that is not open (or not there) claims nothing: `.busy`.
    func claimUploadChunk(id: String, index: Int, writer: String, forMs: Int64) async throws -> ChunkClaim
    /// The claim ends: the chunk is stored (`done`) or let go for a resend. False when the claim was not this
    /// writer's any more (its time ran out and another request took it).
    @discardableResult
    func endUploadChunk(id: String, index: Int, writer: String, done: Bool) async throws -> Bool
    /// The chunk's writer is still at it: its claim lasts `forMs` more. False when it lost the claim.
    func extendUploadChunk(id: String, index: Int, writer: String, forMs: Int64) async throws -> Bool
    /// The chunks stored so far, in order.
    func uploadChunks(id: String) async throws -> [Int]
    /// Sets a deferred length once.
    func setUploadSessionSize(id: String, size: Int64) async throws -> Bool
    func setUploadSessionState(id: String, state: UploadSession.State) async throws
    /// Removes the session and its chunk records.
    func deleteUploadSession(id: String) async throws
    /// Sessions of `instances` whose expiry has passed (any state) and that no request holds now, for the sweeper.
    func expiredUploadSessions(instances: [String], limit: Int) async throws -> [UploadSession]
}
