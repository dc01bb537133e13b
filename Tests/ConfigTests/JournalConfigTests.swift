// ConfigTests: `[journal]`: checkpoint intervals and the RFC 3161 TSA.
import Config
import Testing

@Suite("Configuration [journal]")
struct JournalConfigTests {
    @Test("defaults: a checkpoint every 100 entries or 1 hour, no TSA")
    func defaults() throws {
        let journal = try parse(minimalOAuth + minimalServer).journal
        #expect(journal == JournalSettings(checkpointEveryEntries: 100, checkpointEverySeconds: 3_600))
    }

    @Test("every key read; relative tsa_ca_file resolved against the file")
    func keys() throws {
        let journal = try parse(
            minimalOAuth + minimalServer + """
                [journal]
                checkpoint_every_entries = 5
                checkpoint_every = "10m"
                tsa_url = "https://tsa.example/stamp/"
                tsa_ca_file = "certs/tsa-ca.pem"

                """, path: "/etc/mailgate/mailgate.toml"
        ).journal
        #expect(journal.checkpointEveryEntries == 5)
        #expect(journal.checkpointEverySeconds == 600)
        #expect(journal.tsaURL == "https://tsa.example/stamp")
        #expect(journal.tsaCAFile == "/etc/mailgate/certs/tsa-ca.pem")
    }

    @Test("a TSA without its CA, a plain http TSA elsewhere, zero entries and unknown keys are refused")
    func refusals() throws {
        let noCA = failure(minimalOAuth + minimalServer + "[journal]\ntsa_url = \"https://tsa.example/\"\n")
        #expect(noCA?.description.contains("needs tsa_ca_file") == true, "\(String(describing: noCA))")
        #expect(noCA?.key == "journal.tsa_url")
        let http = failure(
            minimalOAuth + minimalServer + "[journal]\ntsa_url = \"http://tsa.example/\"\ntsa_ca_file = \"ca.pem\"\n")
        #expect(http?.key == "journal.tsa_url")
        #expect(failure(minimalOAuth + minimalServer + "[journal]\ncheckpoint_every_entries = 0\n") != nil)
        #expect(failure(minimalOAuth + minimalServer + "[journal]\ncheckpoint_every = \"5s\"\n") != nil)
        #expect(failure(minimalOAuth + minimalServer + "[journal]\ncheckpoints = 3\n")?.key == "journal.checkpoints")
        #expect(failure(minimalOAuth + minimalServer + "journal = 3\n") != nil)
    }
}
