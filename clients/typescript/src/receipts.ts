import { status, type ServiceError } from "@grpc/grpc-js";

import { type PushServiceClient, type Receipt, StreamReceiptsRequest } from "./gen/pushsvc/v1/push.js";

export interface FollowOptions {
  /** Where to start (empty: the beginning of the notification, or now for the live feed). */
  after?: string;
  /** How long the server may stay unavailable before the last error is thrown (default 30 s). */
  resumeTimeoutMs?: number;
  /** Called with each UNAVAILABLE error before reconnecting. */
  onResume?: (err: ServiceError) => void;
}

function isUnavailable(err: unknown): err is ServiceError {
  return typeof err === "object" && err !== null && (err as ServiceError).code === status.UNAVAILABLE;
}

/**
 * The receipts of one notification (or an app's live feed when notificationId is
 * empty), resumed after UNAVAILABLE from the last cursor.
 *
 * pushsvc numbers receipts densely per app and per notification, so a stream
 * reopened with after=<last cursor> continues with the next receipt: a drain on
 * SIGTERM, a restart, a lost connection or a move to another replica neither
 * skips nor repeats one. Iteration ends when the server ends the stream with OK;
 * any other status is thrown.
 */
export class ReceiptFollower implements AsyncIterable<Receipt> {
  /** The last cursor yielded; pass it as `after` to continue later. */
  cursor: string;
  /** How many times the stream was reopened. */
  resumes = 0;

  constructor(
    private readonly client: PushServiceClient,
    private readonly appId: string,
    private readonly notificationId = "",
    private readonly opts: FollowOptions = {},
  ) {
    this.cursor = opts.after ?? "";
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Receipt> {
    const timeoutMs = this.opts.resumeTimeoutMs ?? 30_000;
    let failures = 0;
    let failingSince = 0;
    for (;;) {
      const call = this.client.streamReceipts(
        StreamReceiptsRequest.fromPartial({ appId: this.appId, notificationId: this.notificationId, after: this.cursor }),
      );
      try {
        for await (const response of call) {
          failures = 0;
          const receipt = response.receipt as Receipt;
          this.cursor = receipt.cursor;
          yield receipt;
        }
        return;
      } catch (err) {
        if (!isUnavailable(err)) throw err;
        const now = Date.now();
        if (failures === 0) failingSince = now;
        if (now - failingSince >= timeoutMs) throw err;
        failures += 1;
        this.resumes += 1;
        this.opts.onResume?.(err);
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** (failures - 1))));
      } finally {
        call.cancel();
      }
    }
  }
}
