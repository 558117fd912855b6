"""Provider adapters: APNs and FCM behind one small Protocol."""
