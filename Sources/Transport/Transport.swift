// Transport: module placeholder replaced by its implementation.
