// Crypto: module placeholder replaced by its implementation.
