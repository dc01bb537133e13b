// SASL: module placeholder replaced by its implementation.
