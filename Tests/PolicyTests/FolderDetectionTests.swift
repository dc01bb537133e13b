// Tests for folder detection: SPECIAL-USE first, then Exchange's localised default names, then configuration.

import IMAP
import Policy
import Testing

@Suite("Folder detection")
struct FolderDetectionTests {
    /// (language, Sent, Trash, Junk) as Exchange names them (sources in SpecialFolderFinder.knownNames).
    static let languages: [(String, String, String, String)] = [
        ("en", "Sent Items", "Deleted Items", "Junk Email"),
        ("en before 2013", "Sent Items", "Deleted Items", "Junk E-mail"),
        ("de", "Gesendete Elemente", "Gelöschte Elemente", "Junk-E-Mail"),
        ("de 2007", "Gesendete Objekte", "Gelöschte Objekte", "Junk-E-mail"),
        ("nl", "Verzonden items", "Verwijderde items", "Ongewenste e-mail"),
        ("sv", "Skickat", "Borttaget", "Skräppost"),
        ("es", "Elementos enviados", "Elementos eliminados", "Correo no deseado"),
        ("fr", "Éléments envoyés", "Éléments supprimés", "Courrier indésirable"),
        ("ru", "Отправленные", "Удаленные", "Нежелательная почта"),
        ("cs", "Odeslaná pošta", "Odstraněná pošta", "Nevyžádaná pošta"),
        ("da", "Sendt post", "Slettet post", "Junk-E-mail"),
        ("ja", "送信済みアイテム", "削除済みアイテム", "迷惑メール"),
        ("it", "Posta inviata", "Posta eliminata", "Posta indesiderata"),
        ("pt-BR", "Itens Enviados", "Itens Excluídos", "Lixo Eletrônico"),
        ("pt-PT", "Itens enviados", "Itens eliminados", "Lixo eletrônico"),
        ("no", "Sendte elementer", "Slettede elementer", "Søppelpost"),
        ("pl", "Elementy wysłane", "Elementy usunięte", "Wiadomości-śmieci"),
        ("hu", "Elküldött elemek", "Törölt elemek", "Levélszemét"),
        ("fi", "Lähetetyt", "Poistetut", "Roskaposti"),
        ("tr", "Gönderilmiş Öğeler", "Silinmiş Öğeler", "Gereksiz E-posta"),
        ("zh", "已发送邮件", "已删除邮件", "垃圾邮件"),
        ("ko", "보낸 편지함", "지운 편지함", "정크 메일"),
    ]

    @Test("a mailbox without SPECIAL-USE is mapped by its localised names", arguments: languages)
    func byName(language: String, sent: String, trash: String, junk: String) throws {
        let list = [info("INBOX"), info("Notizen"), info(sent), info(trash), info(junk), info("\(sent)/2025")]
        let map = FolderMap(configuration: FolderMapConfiguration(), upstreamList: list)
        #expect(try map.serverName(of: .sent)?.decodedName == sent, "\(language)")
        #expect(try map.serverName(of: .trash)?.decodedName == trash, "\(language)")
        #expect(try map.serverName(of: .junk)?.decodedName == junk, "\(language)")
        // The wire form the server listed is what goes upstream.
        #expect(map.serverName(forClient: wire("Sent")).bytes == MailboxName(decoded: sent).bytes)
        #expect(map.serverName(forClient: wire("Sent/2025")).bytes == MailboxName(decoded: "\(sent)/2025").bytes)
    }

    @Test("names match whatever their letter case")
    func caseInsensitive() {
        let map = FolderMap(configuration: FolderMapConfiguration(), upstreamList: [info("SENT ITEMS"), info("deleted items")])
        #expect(map.serverName(of: .sent) == wire("SENT ITEMS"))
        #expect(map.serverName(of: .trash) == wire("deleted items"))
    }

    @Test("SPECIAL-USE beats a known name; Exchange's name beats a generic one")
    func precedence() {
        let marked = [info("Sent Items"), info("Versendet", [.hasNoChildren, .sent])]
        #expect(FolderMap(configuration: FolderMapConfiguration(), upstreamList: marked).serverName(of: .sent) == wire("Versendet"))
        let both = [info("Sent"), info("Sent Items")]
        #expect(FolderMap(configuration: FolderMapConfiguration(), upstreamList: both).serverName(of: .sent) == wire("Sent Items"))
    }

    @Test("a \\Noselect folder is never chosen")
    func notSelectable() {
        let list = [info("Sent Items", [.noSelect, .sent]), info("Gesendete Elemente")]
        let map = FolderMap(configuration: FolderMapConfiguration(), upstreamList: list)
        #expect(map.serverName(of: .sent) == wire("Gesendete Elemente"))
    }

    @Test("the modified UTF-7 name Exchange lists is matched decoded")
    func modifiedUTF7() {
        let list = [MailboxInfo(attributes: [], path: MailboxPath(name: wire("Gel&APY-schte Elemente"), pathSeparator: UInt8(ascii: "/")))]
        let map = FolderMap(configuration: FolderMapConfiguration(), upstreamList: list)
        #expect(map.serverName(of: .trash)?.bytes == Array("Gel&APY-schte Elemente".utf8))
        #expect(map.serverName(forClient: wire("Trash")) == wire("Gel&APY-schte Elemente"))
    }
}
