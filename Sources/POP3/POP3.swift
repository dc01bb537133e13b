// POP3: module placeholder replaced by its implementation.
