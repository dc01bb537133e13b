// Store: where the lock-after-send archive keeps each sent message: the one layout every reader and writer uses.

/// The archive's file layout: `<state>/archive/<aa>/<sha256>`, where `aa` is the hash's first two hex digits.
///
/// The gateway's `MessageArchive` writes through it, `journal verify` and `journal export` read through it; a
/// second copy of the layout could drift and make verify look for files where nothing is written.
public enum ArchiveLayout {
    /// The archive directory inside a state directory.
    public static func directory(stateDirectory: String) -> String { stateDirectory + "/archive" }

    /// Where the archived copy of a message with this SHA-256 lives.
    public static func path(sha256: String, directory: String) -> String {
        directory + "/" + String(sha256.prefix(2)) + "/" + sha256
    }
}
