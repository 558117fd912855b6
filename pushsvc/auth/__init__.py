"""Caller security: authenticators for API keys, JWTs and mTLS identities, the audit log, and building them from the config.

The vocabulary (actions, app scopes, principals, the form of an API key) is
`pushsvc.access`, a leaf that the config's models use too; the gRPC
interceptor that enforces it is `pushsvc.rpc.auth`. The package re-exports
nothing: import its modules.
"""
