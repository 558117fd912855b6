/**
 * pushsvc's TypeScript client: the generated stubs (ts-proto on @grpc/grpc-js),
 * `connect` (TLS, credentials, retries, deadlines) and `ReceiptFollower`, which
 * resumes a receipt stream from its last cursor.
 */
export * from "./gen/pushsvc/v1/push";
export { connect, credentialMetadata, defaultServiceConfig, IDEMPOTENT_METHODS, unary, type ConnectOptions } from "./channel";
export { ReceiptFollower, type FollowOptions } from "./receipts";
