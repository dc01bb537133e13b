// SMTP: module placeholder replaced by its implementation.
