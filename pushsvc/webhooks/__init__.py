"""Receipt webhooks: each app's receipts POSTed to its endpoints in signed batches, at least once.

Modules: `signing` (Standard Webhooks signatures), `poster` (the port: one
POST), `httpclient` (its adapter over the providers' libcurl transport), `sender` (one task per endpoint
following the receipt log from a cursor in the store, and their owner).
docs/webhooks.md is the user's guide.
"""
