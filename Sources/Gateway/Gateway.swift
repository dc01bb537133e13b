// Gateway: module placeholder replaced by its implementation.
