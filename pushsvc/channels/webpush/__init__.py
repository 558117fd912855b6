"""The Web Push channel (RFC 8030 delivery, RFC 8291 encryption, RFC 8292 VAPID).

The token is the browser's `PushSubscription` as a page serializes it with
`JSON.stringify(subscription)`. pushsvc stores it in a canonical form, compact
JSON `{"endpoint":…,"keys":{"p256dh":…,"auth":…}}` (`subscription.canonical`):
the whole subscription is the token, so the store, dispatch and receipts need
no new field, and the endpoint is its identity because a push service never
gives one endpoint two key pairs (a new subscription gets a new endpoint).
`expirationTime` is checked but not stored, so a re-registration that only
changes it updates the same token.
"""
