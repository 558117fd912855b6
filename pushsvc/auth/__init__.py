"""Caller security: principals, API keys, JWTs, mTLS identities, and the interceptor that enforces them.

The package re-exports nothing: `principal` and `apikeys` are the vocabulary
that the config's models use, and `build` reads the config, so an import of
the package must not pull in `build` (that was a hidden cycle). Import the
modules themselves.
"""
