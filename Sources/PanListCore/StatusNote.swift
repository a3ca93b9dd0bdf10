/// What a working driver adds to its storage's status, or why it stopped working since it started (a pasted
/// token that lapsed): shown live in the admin API's storage answers.
public enum StatusNote: Sendable, Equatable {
    /// Working; the status reads `work (text)`.
    case note(String)
    /// Not working any more; the status is the text.
    case failing(String)
}

/// A driver whose status can change after it initialised (cheap to ask: no I/O).
public protocol StatusNoting: Driver {
    func statusNote() -> StatusNote?
}
