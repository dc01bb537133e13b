// Config: module placeholder replaced by its implementation.
