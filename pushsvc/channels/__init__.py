"""Channels: one package or module per push service, found through `channels.registry`.

A channel brings its settings, credentials, renderer, provider adapter, token
checks and reason vocabulary; nothing outside a channel switches on the platform.
"""
