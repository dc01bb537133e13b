// IMAP: module placeholder replaced by its implementation.
