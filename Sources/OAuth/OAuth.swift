// OAuth: module placeholder replaced by its implementation.
