// Gateway: the sent-copy worker answers the IMAP gateway's "a client filed its own copy" (IMAPAppendDedup).
extension SentCopyService: SentCopyCancelling {}
