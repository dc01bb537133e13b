// Config: `[journal]`: when `serve` anchors the sent journal, and the RFC 3161 time-stamping authority.

/// `[journal]`: checkpoints of the hash chain, optionally time-stamped by a TSA.
public struct JournalSettings: Sendable, Equatable {
    /// A checkpoint once this many entries were added since the last one.
    public var checkpointEveryEntries: Int
    /// A checkpoint this many seconds after the last one, if entries were added since.
    public var checkpointEverySeconds: Int
    /// The TSA's URL (`https://`; `http://` only on loopback); nil: checkpoints are not time-stamped.
    public var tsaURL: String?
    /// PEM trust anchors for the TSA: its HTTPS certificate and the signer of its tokens.
    public var tsaCAFile: String?

    public init(
        checkpointEveryEntries: Int = 100, checkpointEverySeconds: Int = 3_600, tsaURL: String? = nil,
        tsaCAFile: String? = nil
    ) {
        self.checkpointEveryEntries = checkpointEveryEntries
        self.checkpointEverySeconds = checkpointEverySeconds
        self.tsaURL = tsaURL
        self.tsaCAFile = tsaCAFile
    }
}

extension ConfigurationBuilder {
    /// `[journal]`, type-checked already; a TSA needs its trust anchors to verify the tokens it returns.
    func buildJournal(_ values: SectionValues) throws(ConfigError) -> JournalSettings {
        let settings = JournalSettings(
            checkpointEveryEntries: values.integer("checkpoint_every_entries") ?? 100,
            checkpointEverySeconds: values.integer("checkpoint_every") ?? 3_600, tsaURL: values.string("tsa_url"),
            tsaCAFile: values.string("tsa_ca_file"))
        if settings.tsaURL != nil, settings.tsaCAFile == nil {
            throw error(
                ["journal", "tsa_url"],
                "needs tsa_ca_file: the PEM file of the CA that issued the TSA's signing certificate, so that its "
                    + "time-stamp tokens can be verified.")
        }
        return settings
    }
}
