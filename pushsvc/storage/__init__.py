"""Token, notification and receipt storage behind small Protocols."""
