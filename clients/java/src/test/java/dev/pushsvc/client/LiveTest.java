package dev.pushsvc.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.pushsvc.client.examples.SendAndFollow;
import dev.pushsvc.v1.DeliveryStatus;
import dev.pushsvc.v1.Message;
import dev.pushsvc.v1.Platform;
import dev.pushsvc.v1.PushServiceGrpc;
import dev.pushsvc.v1.Receipt;
import dev.pushsvc.v1.RegisterTokenRequest;
import dev.pushsvc.v1.SendRequest;
import dev.pushsvc.v1.StreamReceiptsRequest;
import dev.pushsvc.v1.StreamReceiptsResponse;
import dev.pushsvc.v1.Target;
import dev.pushsvc.v1.UserList;
import io.grpc.ManagedChannel;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Runs against a live `pushsvc dev` that tests/clients starts; skipped when PUSHSVC_TARGET is
 * unset. The resume test also takes PUSHSVC_CUT_DIR and PUSHSVC_CUT_AFTER: after that many
 * receipts it creates CUT_DIR/ready and waits for CUT_DIR/go while the driver restarts the server.
 * Each test writes its findings to PUSHSVC_RESULT_DIR/&lt;test&gt;.json.
 */
class LiveTest {
  private static final String TARGET = System.getenv().getOrDefault("PUSHSVC_TARGET", "");
  private static final String APP = System.getenv().getOrDefault("PUSHSVC_APP_ID", "demo");
  private static final SecureRandom RANDOM = new SecureRandom();

  private ManagedChannel channel;
  private PushServiceGrpc.PushServiceBlockingStub stub;

  private static String hex(int n) {
    byte[] b = new byte[n];
    RANDOM.nextBytes(b);
    return HexFormat.of().formatHex(b);
  }

  @BeforeEach
  void connect() throws Exception {
    assumeTrue(!TARGET.isEmpty(), "PUSHSVC_TARGET is not set (tests/clients sets it)");
    channel = PushsvcChannels.connect(TARGET);
    stub = PushServiceGrpc.newBlockingStub(channel);
  }

  @AfterEach
  void close() throws Exception {
    if (channel != null) {
      channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
    }
  }

  private String registerAndSend(String user, Map<String, Platform> tokens) {
    for (Map.Entry<String, Platform> t : tokens.entrySet()) {
      stub.registerToken(
          RegisterTokenRequest.newBuilder()
              .setAppId(APP)
              .setToken(t.getKey())
              .setPlatform(t.getValue())
              .setUserId(user)
              .build());
    }
    return stub.send(
            SendRequest.newBuilder()
                .setAppId(APP)
                .setTarget(Target.newBuilder().setUsers(UserList.newBuilder().addUserIds(user)))
                .setMessage(Message.newBuilder().setTitle("client test").setBody("java"))
                .build())
        .getNotificationId();
  }

  private static void writeResult(String name, Map<String, Object> result) throws Exception {
    String json =
        result.entrySet().stream()
            .map(
                e ->
                    "\"" + e.getKey() + "\":"
                        + (e.getValue() instanceof Number ? e.getValue() : "\"" + e.getValue() + "\""))
            .collect(Collectors.joining(",", "{", "}"));
    Path dir = Path.of(System.getenv().getOrDefault("PUSHSVC_RESULT_DIR", "."));
    Files.writeString(dir.resolve(name + ".json"), json);
  }

  @Test
  @Timeout(60)
  void example() throws Exception {
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    SendAndFollow.run(TARGET, APP, new PrintStream(buf, true, StandardCharsets.UTF_8));
    String out = buf.toString(StandardCharsets.UTF_8);
    assertTrue(out.contains("DELIVERY_STATUS_DELIVERED after 1 attempt(s)"), out);
    assertTrue(out.strip().endsWith("stream ended with OK"), out);
  }

  @Test
  @Timeout(60)
  void smoke() throws Exception {
    String user = "smoke-java-" + hex(4);
    String ok = "ab" + hex(31);
    String dead = "0410" + hex(30);
    String fcm = "java-smoke-" + hex(6);
    Map<String, Platform> tokens = new LinkedHashMap<>();
    tokens.put(ok, Platform.PLATFORM_APNS);
    tokens.put(dead, Platform.PLATFORM_APNS);
    tokens.put(fcm, Platform.PLATFORM_FCM);
    String nid = registerAndSend(user, tokens);
    // The generated stub itself: the iterator ends (the stream's OK) once the notification is done;
    // any other status would throw.
    Iterator<StreamReceiptsResponse> it =
        stub.streamReceipts(
            StreamReceiptsRequest.newBuilder().setAppId(APP).setNotificationId(nid).build());
    Map<String, DeliveryStatus> got = new HashMap<>();
    List<String> cursors = new ArrayList<>();
    while (it.hasNext()) {
      Receipt r = it.next().getReceipt();
      got.put(r.getToken(), r.getStatus());
      cursors.add(r.getCursor());
    }
    assertEquals(
        Map.of(
            ok, DeliveryStatus.DELIVERY_STATUS_DELIVERED,
            dead, DeliveryStatus.DELIVERY_STATUS_TOKEN_INVALID,
            fcm, DeliveryStatus.DELIVERY_STATUS_DELIVERED),
        got);
    assertEquals(3, new HashSet<>(cursors).size());
    assertTrue(cursors.stream().noneMatch(String::isEmpty));
    Map<String, Object> result = new LinkedHashMap<>();
    result.put("notification_id", nid);
    result.put("receipts", got.size());
    result.put("status", "OK");
    writeResult("smoke", result);
  }

  @Test
  @Timeout(180)
  void resume() throws Exception {
    String cutDirEnv = System.getenv().getOrDefault("PUSHSVC_CUT_DIR", "");
    assumeTrue(!cutDirEnv.isEmpty(), "PUSHSVC_CUT_DIR is not set: only tests/clients can restart the server");
    Path cutDir = Path.of(cutDirEnv);
    int cutAfter = Integer.parseInt(System.getenv().getOrDefault("PUSHSVC_CUT_AFTER", "50"));
    String user = "resume-java-" + hex(4);
    String run = hex(4);
    // quota- tokens answer 429 with Retry-After: 1 first, so the notification is still running
    // when the stream is cut.
    Map<String, Platform> tokens = new LinkedHashMap<>();
    for (int i = 0; i < 200; i++) {
      tokens.put("ab" + hex(31), Platform.PLATFORM_APNS);
    }
    for (int i = 0; i < 100; i++) {
      tokens.put("quota-" + run + "-" + i, Platform.PLATFORM_FCM);
    }
    String nid = registerAndSend(user, tokens);

    ReceiptFollower follower =
        new ReceiptFollower(channel, APP, nid).resumeTimeout(Duration.ofSeconds(60));
    List<Receipt> seen = new ArrayList<>();
    follower.run(
        r -> {
          seen.add(r);
          if (seen.size() == cutAfter) {
            // Signal the driver and keep reading: the restart cuts the stream while the
            // "quota-" receipts are still pending. (Blocking here until the restart, as the
            // other clients do, stalls grpc-java's inbound flow control, and the server's
            // drain then waits for its grace period instead of ending the stream.)
            try {
              Files.writeString(cutDir.resolve("ready"), "");
            } catch (Exception e) {
              throw new RuntimeException(e);
            }
          }
        });
    List<String> got = seen.stream().map(Receipt::getToken).collect(Collectors.toList());
    assertEquals(tokens.size(), got.size());
    assertEquals(tokens.keySet(), new HashSet<>(got));
    assertEquals(tokens.size(), seen.stream().map(Receipt::getCursor).distinct().count());
    assertTrue(follower.resumes() >= 1, "the stream was never cut");
    assertTrue(
        seen.stream().allMatch(r -> r.getStatus() == DeliveryStatus.DELIVERY_STATUS_DELIVERED));
    Map<String, Object> result = new LinkedHashMap<>();
    result.put("notification_id", nid);
    result.put("receipts", got.size());
    result.put("unique_tokens", new HashSet<>(got).size());
    result.put("unique_cursors", seen.stream().map(Receipt::getCursor).distinct().count());
    result.put("resumes", follower.resumes());
    result.put("status", "OK");
    writeResult("resume", result);
  }
}
