// Store: module placeholder replaced by its implementation.
