package dev.pushsvc.client.examples;

import dev.pushsvc.client.PushsvcChannels;
import dev.pushsvc.client.ReceiptFollower;
import dev.pushsvc.v1.Device;
import dev.pushsvc.v1.DeviceList;
import dev.pushsvc.v1.Message;
import dev.pushsvc.v1.Platform;
import dev.pushsvc.v1.PushServiceGrpc;
import dev.pushsvc.v1.RegisterTokenRequest;
import dev.pushsvc.v1.SendRequest;
import dev.pushsvc.v1.SendResponse;
import dev.pushsvc.v1.Target;
import io.grpc.ManagedChannel;
import java.io.PrintStream;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;

/**
 * Registers a token, sends to it, and streams its receipts until the stream ends.
 *
 * <pre>java -cp ... dev.pushsvc.client.examples.SendAndFollow [host:port] [app]</pre>
 */
public final class SendAndFollow {
  private SendAndFollow() {}

  public static void main(String[] args) throws Exception {
    run(args.length > 0 ? args[0] : "localhost:50051", args.length > 1 ? args[1] : "demo", System.out);
  }

  /** The example itself, printing to out. */
  public static void run(String target, String app, PrintStream out) throws Exception {
    ManagedChannel channel = PushsvcChannels.connect(target);
    try {
      PushServiceGrpc.PushServiceBlockingStub stub = PushServiceGrpc.newBlockingStub(channel);
      byte[] raw = new byte[31];
      new SecureRandom().nextBytes(raw);
      String token = "ab" + HexFormat.of().formatHex(raw);
      stub.registerToken(
          RegisterTokenRequest.newBuilder()
              .setAppId(app)
              .setToken(token)
              .setPlatform(Platform.PLATFORM_APNS)
              .setUserId("example-user")
              .build());
      SendResponse sent =
          stub.send(
              SendRequest.newBuilder()
                  .setAppId(app)
                  .setTarget(
                      Target.newBuilder()
                          .setDevices(
                              DeviceList.newBuilder()
                                  .addDevices(
                                      Device.newBuilder()
                                          .setToken(token)
                                          .setPlatform(Platform.PLATFORM_APNS))))
                  .setMessage(
                      Message.newBuilder().setTitle("Hello").setBody("from the pushsvc Java client"))
                  .build());
      out.println("notification " + sent.getNotificationId());
      new ReceiptFollower(channel, app, sent.getNotificationId())
          .run(
              r ->
                  out.printf(
                      "%s… %s after %d attempt(s)%n",
                      r.getToken().substring(0, 12), r.getStatus(), r.getAttempts()));
      out.println("stream ended with OK");
    } finally {
      channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
    }
  }
}
