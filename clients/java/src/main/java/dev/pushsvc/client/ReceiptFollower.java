package dev.pushsvc.client;

import dev.pushsvc.v1.PushServiceGrpc;
import dev.pushsvc.v1.Receipt;
import dev.pushsvc.v1.StreamReceiptsRequest;
import dev.pushsvc.v1.StreamReceiptsResponse;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.Iterator;
import java.util.function.Consumer;

/**
 * Streams the receipts of one notification (or an app's live feed when the notification id is
 * empty) and resumes after UNAVAILABLE from the last cursor.
 *
 * <p>pushsvc numbers receipts densely per app and per notification, so a stream reopened with
 * after=&lt;last cursor&gt; continues with the next receipt: a drain on SIGTERM, a restart, a lost
 * connection or a move to another replica neither skips nor repeats one. {@link #run} returns when
 * the server ends the stream with OK and throws on any other status.
 */
public final class ReceiptFollower {
  private final ManagedChannel channel;
  private final PushServiceGrpc.PushServiceBlockingStub stub;
  private final String appId;
  private final String notificationId;
  private String cursor;
  private int resumes;
  private Duration resumeTimeout = Duration.ofSeconds(30);
  private Consumer<StatusRuntimeException> onResume = e -> {};

  /** Follows from the start of the notification (or from now, for the live feed). */
  public ReceiptFollower(ManagedChannel channel, String appId, String notificationId) {
    this.channel = channel;
    this.stub = PushServiceGrpc.newBlockingStub(channel);
    this.appId = appId;
    this.notificationId = notificationId;
    this.cursor = "";
  }

  /** Starts after this cursor instead. */
  public ReceiptFollower after(String cursor) {
    this.cursor = cursor;
    return this;
  }

  /** How long the server may stay unavailable before the last error is thrown (default 30 s). */
  public ReceiptFollower resumeTimeout(Duration timeout) {
    this.resumeTimeout = timeout;
    return this;
  }

  /** Called with each UNAVAILABLE error before reconnecting. */
  public ReceiptFollower onResume(Consumer<StatusRuntimeException> onResume) {
    this.onResume = onResume;
    return this;
  }

  /** The last cursor delivered; pass it to {@link #after} to continue later. */
  public String cursor() {
    return cursor;
  }

  /** How many times the stream was reopened. */
  public int resumes() {
    return resumes;
  }

  /** Calls fn for each receipt, in order, until the stream ends with OK. */
  public void run(Consumer<Receipt> fn) throws InterruptedException {
    int failures = 0;
    long failingSince = 0;
    while (true) {
      Context.CancellableContext ctx = Context.current().withCancellation();
      Context previous = ctx.attach();
      try {
        Iterator<StreamReceiptsResponse> it =
            stub.streamReceipts(
                StreamReceiptsRequest.newBuilder()
                    .setAppId(appId)
                    .setNotificationId(notificationId)
                    .setAfter(cursor)
                    .build());
        while (it.hasNext()) {
          Receipt receipt = it.next().getReceipt();
          failures = 0;
          cursor = receipt.getCursor();
          fn.accept(receipt);
        }
        return;
      } catch (StatusRuntimeException e) {
        if (e.getStatus().getCode() != Status.Code.UNAVAILABLE) {
          throw e;
        }
        long now = System.nanoTime();
        if (failures == 0) {
          failingSince = now;
        }
        if (Duration.ofNanos(now - failingSince).compareTo(resumeTimeout) >= 0) {
          throw e;
        }
        failures++;
        resumes++;
        onResume.accept(e);
        // The channel's own reconnect backoff grows to minutes; a replica that is back should be
        // tried now.
        channel.resetConnectBackoff();
        Thread.sleep(Math.min(2000L, 100L << Math.min(failures - 1, 5)));
      } finally {
        ctx.detach(previous);
        ctx.cancel(null);
      }
    }
  }
}
