// TLS: module placeholder replaced by its implementation.
