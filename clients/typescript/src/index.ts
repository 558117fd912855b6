/**
 * pushsvc's TypeScript client: the generated stubs (ts-proto on @grpc/grpc-js),
 * `connect` (TLS, credentials, retries, deadlines) and `ReceiptFollower`, which
 * resumes a receipt stream from its last cursor.
 */
export * from "./gen/pushsvc/v1/push.js";
export { connect, credentialMetadata, defaultServiceConfig, IDEMPOTENT_METHODS, unary, type ConnectOptions } from "./channel.js";
export { ReceiptFollower, type FollowOptions } from "./receipts.js";
