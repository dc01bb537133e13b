// MailGateTesting: module placeholder replaced by its implementation.
