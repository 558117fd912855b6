"""Local APNs, FCM and Google OAuth emulator over TLS + HTTP/2."""
