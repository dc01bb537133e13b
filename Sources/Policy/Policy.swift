// Policy: module placeholder replaced by its implementation.
