// Gateway: `serve`'s journal checkpoints, started and stopped with one line each in GatewayServer.
import Config
import Logging
import Store

extension GatewayServer {
    /// Starts the checkpointer of `[journal]`; a TSA that cannot be set up (unreadable tsa_ca_file) is logged and
    /// checkpoints are written without tokens.
    static func startJournalCheckpoints(
        configuration: MailGateConfiguration, database: MailGateDatabase, stateDirectory: String, logger: Logger
    ) -> JournalCheckpointer {
        let settings = configuration.journal
        var stamper: TimeStampClient?
        if let url = settings.tsaURL, let caFile = settings.tsaCAFile {
            do {
                stamper = try TimeStampClient(url: url, caFile: caFile)
            } catch {
                logger.error("journal checkpoints: the TSA \(url) cannot be used: \(error); checkpoints get no tokens")
            }
        }
        let checkpointer = JournalCheckpointer(
            database: database, stateDirectory: stateDirectory, settings: settings, logger: logger, stamper: stamper)
        checkpointer.start()
        return checkpointer
    }
}
