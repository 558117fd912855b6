"""The Huawei Push Kit channel (HMS Core): the v2 send API with OAuth client credentials.

Tokens are opaque. One request carries up to 1,000 tokens of one
notification; Huawei's result code says what became of them
(reference/protocols-webpush-hms.md Part 2).
"""
