import TriplineAudit

/// The audit log's operations beside the state (SPEC §7): records are appended by `StateStore.commit` in the same
/// transaction as the change they describe; this protocol is the rest — the tree head, proofs, signed
/// checkpoints, erasure, and what verification reads. Commands and services hold an `any StateStore & AuditStore`
/// and never a concrete store.
public protocol AuditStore: AnyObject, Sendable {
    /// Records in the log.
    func auditSize() throws(StateError) -> Int
    /// The tree head over the first `size` records.
    func auditRoot(size: Int) throws(StateError) -> Hash
    func auditLeaf(_ index: Int) throws(StateError) -> Hash
    func inclusionProof(index: Int, size: Int) throws(StateError) -> [Hash]
    func consistencyProof(old: Int, new: Int) throws(StateError) -> [Hash]
    /// Signs the current tree head and stores the note; returns it.
    func checkpoint(origin: String, signer: NoteSigner, at: Double) throws -> String
    func checkpoints() throws(StateError) -> [(size: Int, note: String)]
    /// Erases record `index`'s payload (its personal data), itself an audit record in the same transaction.
    func erasePayload(index: Int, event: EventDraft) throws(StateError) -> Bool
    /// Everything an auditor recomputes: records with payloads, stored nodes, stored checkpoints.
    func auditLog() throws(StateError) -> AuditLog
}

/// A store that keeps both the state and its audit log (SQLite, later PostgreSQL).
public typealias DurableStore = StateStore & AuditStore
