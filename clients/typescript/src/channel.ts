import { credentials, InterceptingCall, type ChannelOptions, type Interceptor, type ServiceError } from "@grpc/grpc-js";

import { PushServiceClient } from "./gen/pushsvc/v1/push.js";

const SERVICE = "pushsvc.v1.PushService";

/**
 * Calls that are safe to repeat: RegisterToken(s) upsert, UnregisterToken and
 * Prune converge, GetNotification and the lookups read, a repeated
 * CancelNotification answers as the first. Send is idempotent only with an
 * idempotency_key, which a service config cannot see; StreamReceipts is resumed
 * by ReceiptFollower instead.
 */
export const IDEMPOTENT_METHODS = [
  "RegisterToken", "RegisterTokens", "UnregisterToken", "GetNotification", "Prune",
  "CancelNotification", "GetToken", "ListTokens", "ListNotifications",
] as const;

/** Retries idempotent calls on UNAVAILABLE; a deadline on every unary call. */
export function defaultServiceConfig(deadlineS = 10): object {
  const timeout = `${deadlineS}s`;
  return {
    methodConfig: [
      {
        name: IDEMPOTENT_METHODS.map((method) => ({ service: SERVICE, method })),
        timeout,
        retryPolicy: {
          maxAttempts: 5,
          initialBackoff: "0.1s",
          maxBackoff: "2s",
          backoffMultiplier: 2,
          retryableStatusCodes: ["UNAVAILABLE"],
        },
      },
      { name: [{ service: SERVICE, method: "Send" }], timeout },
    ],
  };
}

export interface ConnectOptions {
  /** Verify the server against rootCerts (PEM; the system roots when absent). */
  tls?: boolean;
  rootCerts?: Buffer;
  /** Sent as "authorization: Bearer <key>". */
  apiKey?: string;
  /** Sent as "authorization: Bearer <jwt>". */
  jwt?: string;
  /** The deadline of every unary call, in seconds (default 10). */
  deadlineS?: number;
  channelOptions?: ChannelOptions;
}

/** The metadata pushsvc reads caller credentials from. */
export function credentialMetadata(opts: ConnectOptions): Record<string, string> {
  if (opts.apiKey && opts.jwt) throw new Error("give an API key or a JWT, not both");
  if (opts.apiKey) return { authorization: `Bearer ${opts.apiKey}` };
  if (opts.jwt) return { authorization: `Bearer ${opts.jwt}` };
  return {};
}

function metadataInterceptor(extra: Record<string, string>): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        for (const [key, value] of Object.entries(extra)) metadata.set(key, value);
        next(metadata, listener);
      },
    });
}

/**
 * A PushServiceClient for `target` ("host:port") with the default service config,
 * credentials metadata and a reconnect backoff short enough that a stream resumes
 * within seconds of a replica restart.
 */
export function connect(target: string, opts: ConnectOptions = {}): PushServiceClient {
  const creds = opts.tls ? credentials.createSsl(opts.rootCerts ?? null) : credentials.createInsecure();
  const extra = credentialMetadata(opts);
  const interceptors = Object.keys(extra).length ? [metadataInterceptor(extra)] : [];
  return new PushServiceClient(target, creds, {
    "grpc.service_config": JSON.stringify(defaultServiceConfig(opts.deadlineS)),
    "grpc.enable_retries": 1,
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 2000,
    ...opts.channelOptions,
    interceptors,
  });
}

/** Promise form of a unary call: `await unary<SendResponse>((cb) => client.send(request, cb))`. */
export function unary<Res>(start: (cb: (err: ServiceError | null, res: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    start((err, res) => (err ? reject(err) : resolve(res)));
  });
}
