package dev.pushsvc.client;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.MetadataUtils;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Channels to pushsvc: TLS, credentials metadata, a retrying service config and deadlines. */
public final class PushsvcChannels {
  private static final String SERVICE = "pushsvc.v1.PushService";

  /**
   * Calls that are safe to repeat: RegisterToken(s) upsert, UnregisterToken and Prune converge,
   * GetNotification and the lookups read, a repeated CancelNotification answers as the first. Send
   * is idempotent only with an idempotency_key, which a service config
   * cannot see; StreamReceipts is resumed by {@link ReceiptFollower} instead.
   */
  public static final List<String> IDEMPOTENT_METHODS =
      List.of(
          "RegisterToken", "RegisterTokens", "UnregisterToken", "GetNotification", "Prune",
          "CancelNotification", "GetToken", "ListTokens", "ListNotifications");

  private PushsvcChannels() {}

  /** What {@link #connect} sets up; the defaults are a plaintext channel without credentials. */
  public static final class Options {
    boolean tls;
    byte[] rootCertsPem;
    String apiKey;
    String jwt;
    double deadlineSeconds = 10;

    /** TLS, verified against these PEM roots (null: the system roots). */
    public Options tls(byte[] rootCertsPem) {
      this.tls = true;
      this.rootCertsPem = rootCertsPem;
      return this;
    }

    /** Sent as {@code "authorization: Bearer <key>"} on every call. */
    public Options apiKey(String apiKey) {
      this.apiKey = apiKey;
      return this;
    }

    /** Sent as "authorization: Bearer &lt;jwt&gt;" on every call. */
    public Options jwt(String jwt) {
      this.jwt = jwt;
      return this;
    }

    /** The deadline of every unary call. */
    public Options deadlineSeconds(double seconds) {
      this.deadlineSeconds = seconds;
      return this;
    }
  }

  /** Retries the idempotent calls on UNAVAILABLE; a deadline on every unary call. */
  public static Map<String, Object> defaultServiceConfig(double deadlineSeconds) {
    String timeout = deadlineSeconds + "s";
    List<Object> names = new ArrayList<>();
    for (String method : IDEMPOTENT_METHODS) {
      names.add(Map.of("service", SERVICE, "method", method));
    }
    Map<String, Object> retry =
        Map.of(
            "maxAttempts", 5.0,
            "initialBackoff", "0.1s",
            "maxBackoff", "2s",
            "backoffMultiplier", 2.0,
            "retryableStatusCodes", List.of("UNAVAILABLE"));
    Map<String, Object> idempotent = Map.of("name", names, "timeout", timeout, "retryPolicy", retry);
    Map<String, Object> send =
        Map.of("name", List.of(Map.of("service", SERVICE, "method", "Send")), "timeout", timeout);
    return Map.of("methodConfig", List.of(idempotent, send));
  }

  /** The metadata pushsvc reads caller credentials from. */
  public static Metadata credentialMetadata(Options options) {
    if (options.apiKey != null && options.jwt != null) {
      throw new IllegalArgumentException("give an API key or a JWT, not both");
    }
    Metadata md = new Metadata();
    if (options.apiKey != null) {
      md.put(
          Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + options.apiKey);
    }
    if (options.jwt != null) {
      md.put(
          Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + options.jwt);
    }
    return md;
  }

  /** A channel to pushsvc at target ("host:port"). */
  public static ManagedChannel connect(String target, Options options) throws IOException {
    ChannelCredentials creds = InsecureChannelCredentials.create();
    if (options.tls) {
      TlsChannelCredentials.Builder tls = TlsChannelCredentials.newBuilder();
      if (options.rootCertsPem != null) {
        tls.trustManager(new ByteArrayInputStream(options.rootCertsPem));
      }
      creds = tls.build();
    }
    ManagedChannelBuilder<?> builder =
        Grpc.newChannelBuilder(target, creds)
            .defaultServiceConfig(defaultServiceConfig(options.deadlineSeconds))
            .enableRetry();
    Metadata md = credentialMetadata(options);
    if (!md.keys().isEmpty()) {
      builder.intercept(MetadataUtils.newAttachHeadersInterceptor(md));
    }
    return builder.build();
  }

  /** A plaintext channel without credentials, for `pushsvc dev`. */
  public static ManagedChannel connect(String target) throws IOException {
    return connect(target, new Options());
  }
}
