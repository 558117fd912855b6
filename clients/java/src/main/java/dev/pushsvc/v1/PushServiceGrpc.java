package dev.pushsvc.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 * <pre>
 * PushService registers device tokens, sends notifications through APNs and
 * FCM, prunes stale tokens and streams one delivery receipt per token.
 * </pre>
 */
@javax.annotation.Generated(
    value = "by gRPC proto compiler",
    comments = "Source: pushsvc/v1/push.proto")
@io.grpc.stub.annotations.GrpcGenerated
public final class PushServiceGrpc {

  private PushServiceGrpc() {}

  public static final String SERVICE_NAME = "pushsvc.v1.PushService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.RegisterTokenRequest,
      dev.pushsvc.v1.RegisterTokenResponse> getRegisterTokenMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "RegisterToken",
      requestType = dev.pushsvc.v1.RegisterTokenRequest.class,
      responseType = dev.pushsvc.v1.RegisterTokenResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.RegisterTokenRequest,
      dev.pushsvc.v1.RegisterTokenResponse> getRegisterTokenMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.RegisterTokenRequest, dev.pushsvc.v1.RegisterTokenResponse> getRegisterTokenMethod;
    if ((getRegisterTokenMethod = PushServiceGrpc.getRegisterTokenMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getRegisterTokenMethod = PushServiceGrpc.getRegisterTokenMethod) == null) {
          PushServiceGrpc.getRegisterTokenMethod = getRegisterTokenMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.RegisterTokenRequest, dev.pushsvc.v1.RegisterTokenResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "RegisterToken"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.RegisterTokenRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.RegisterTokenResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("RegisterToken"))
              .build();
        }
      }
    }
    return getRegisterTokenMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.RegisterTokensRequest,
      dev.pushsvc.v1.RegisterTokensResponse> getRegisterTokensMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "RegisterTokens",
      requestType = dev.pushsvc.v1.RegisterTokensRequest.class,
      responseType = dev.pushsvc.v1.RegisterTokensResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.RegisterTokensRequest,
      dev.pushsvc.v1.RegisterTokensResponse> getRegisterTokensMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.RegisterTokensRequest, dev.pushsvc.v1.RegisterTokensResponse> getRegisterTokensMethod;
    if ((getRegisterTokensMethod = PushServiceGrpc.getRegisterTokensMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getRegisterTokensMethod = PushServiceGrpc.getRegisterTokensMethod) == null) {
          PushServiceGrpc.getRegisterTokensMethod = getRegisterTokensMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.RegisterTokensRequest, dev.pushsvc.v1.RegisterTokensResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "RegisterTokens"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.RegisterTokensRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.RegisterTokensResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("RegisterTokens"))
              .build();
        }
      }
    }
    return getRegisterTokensMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.UnregisterTokenRequest,
      dev.pushsvc.v1.UnregisterTokenResponse> getUnregisterTokenMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "UnregisterToken",
      requestType = dev.pushsvc.v1.UnregisterTokenRequest.class,
      responseType = dev.pushsvc.v1.UnregisterTokenResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.UnregisterTokenRequest,
      dev.pushsvc.v1.UnregisterTokenResponse> getUnregisterTokenMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.UnregisterTokenRequest, dev.pushsvc.v1.UnregisterTokenResponse> getUnregisterTokenMethod;
    if ((getUnregisterTokenMethod = PushServiceGrpc.getUnregisterTokenMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getUnregisterTokenMethod = PushServiceGrpc.getUnregisterTokenMethod) == null) {
          PushServiceGrpc.getUnregisterTokenMethod = getUnregisterTokenMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.UnregisterTokenRequest, dev.pushsvc.v1.UnregisterTokenResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "UnregisterToken"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.UnregisterTokenRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.UnregisterTokenResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("UnregisterToken"))
              .build();
        }
      }
    }
    return getUnregisterTokenMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.SendRequest,
      dev.pushsvc.v1.SendResponse> getSendMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Send",
      requestType = dev.pushsvc.v1.SendRequest.class,
      responseType = dev.pushsvc.v1.SendResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.SendRequest,
      dev.pushsvc.v1.SendResponse> getSendMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.SendRequest, dev.pushsvc.v1.SendResponse> getSendMethod;
    if ((getSendMethod = PushServiceGrpc.getSendMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getSendMethod = PushServiceGrpc.getSendMethod) == null) {
          PushServiceGrpc.getSendMethod = getSendMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.SendRequest, dev.pushsvc.v1.SendResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Send"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.SendRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.SendResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("Send"))
              .build();
        }
      }
    }
    return getSendMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.GetNotificationRequest,
      dev.pushsvc.v1.GetNotificationResponse> getGetNotificationMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetNotification",
      requestType = dev.pushsvc.v1.GetNotificationRequest.class,
      responseType = dev.pushsvc.v1.GetNotificationResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.GetNotificationRequest,
      dev.pushsvc.v1.GetNotificationResponse> getGetNotificationMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.GetNotificationRequest, dev.pushsvc.v1.GetNotificationResponse> getGetNotificationMethod;
    if ((getGetNotificationMethod = PushServiceGrpc.getGetNotificationMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getGetNotificationMethod = PushServiceGrpc.getGetNotificationMethod) == null) {
          PushServiceGrpc.getGetNotificationMethod = getGetNotificationMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.GetNotificationRequest, dev.pushsvc.v1.GetNotificationResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetNotification"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.GetNotificationRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.GetNotificationResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("GetNotification"))
              .build();
        }
      }
    }
    return getGetNotificationMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.PruneRequest,
      dev.pushsvc.v1.PruneResponse> getPruneMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Prune",
      requestType = dev.pushsvc.v1.PruneRequest.class,
      responseType = dev.pushsvc.v1.PruneResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.PruneRequest,
      dev.pushsvc.v1.PruneResponse> getPruneMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.PruneRequest, dev.pushsvc.v1.PruneResponse> getPruneMethod;
    if ((getPruneMethod = PushServiceGrpc.getPruneMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getPruneMethod = PushServiceGrpc.getPruneMethod) == null) {
          PushServiceGrpc.getPruneMethod = getPruneMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.PruneRequest, dev.pushsvc.v1.PruneResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Prune"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.PruneRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.PruneResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("Prune"))
              .build();
        }
      }
    }
    return getPruneMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.StreamReceiptsRequest,
      dev.pushsvc.v1.StreamReceiptsResponse> getStreamReceiptsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "StreamReceipts",
      requestType = dev.pushsvc.v1.StreamReceiptsRequest.class,
      responseType = dev.pushsvc.v1.StreamReceiptsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.StreamReceiptsRequest,
      dev.pushsvc.v1.StreamReceiptsResponse> getStreamReceiptsMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.StreamReceiptsRequest, dev.pushsvc.v1.StreamReceiptsResponse> getStreamReceiptsMethod;
    if ((getStreamReceiptsMethod = PushServiceGrpc.getStreamReceiptsMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getStreamReceiptsMethod = PushServiceGrpc.getStreamReceiptsMethod) == null) {
          PushServiceGrpc.getStreamReceiptsMethod = getStreamReceiptsMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.StreamReceiptsRequest, dev.pushsvc.v1.StreamReceiptsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "StreamReceipts"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.StreamReceiptsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.StreamReceiptsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("StreamReceipts"))
              .build();
        }
      }
    }
    return getStreamReceiptsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.CancelNotificationRequest,
      dev.pushsvc.v1.CancelNotificationResponse> getCancelNotificationMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "CancelNotification",
      requestType = dev.pushsvc.v1.CancelNotificationRequest.class,
      responseType = dev.pushsvc.v1.CancelNotificationResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.CancelNotificationRequest,
      dev.pushsvc.v1.CancelNotificationResponse> getCancelNotificationMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.CancelNotificationRequest, dev.pushsvc.v1.CancelNotificationResponse> getCancelNotificationMethod;
    if ((getCancelNotificationMethod = PushServiceGrpc.getCancelNotificationMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getCancelNotificationMethod = PushServiceGrpc.getCancelNotificationMethod) == null) {
          PushServiceGrpc.getCancelNotificationMethod = getCancelNotificationMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.CancelNotificationRequest, dev.pushsvc.v1.CancelNotificationResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "CancelNotification"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.CancelNotificationRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.CancelNotificationResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("CancelNotification"))
              .build();
        }
      }
    }
    return getCancelNotificationMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.GetTokenRequest,
      dev.pushsvc.v1.GetTokenResponse> getGetTokenMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetToken",
      requestType = dev.pushsvc.v1.GetTokenRequest.class,
      responseType = dev.pushsvc.v1.GetTokenResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.GetTokenRequest,
      dev.pushsvc.v1.GetTokenResponse> getGetTokenMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.GetTokenRequest, dev.pushsvc.v1.GetTokenResponse> getGetTokenMethod;
    if ((getGetTokenMethod = PushServiceGrpc.getGetTokenMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getGetTokenMethod = PushServiceGrpc.getGetTokenMethod) == null) {
          PushServiceGrpc.getGetTokenMethod = getGetTokenMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.GetTokenRequest, dev.pushsvc.v1.GetTokenResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetToken"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.GetTokenRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.GetTokenResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("GetToken"))
              .build();
        }
      }
    }
    return getGetTokenMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.ListTokensRequest,
      dev.pushsvc.v1.ListTokensResponse> getListTokensMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListTokens",
      requestType = dev.pushsvc.v1.ListTokensRequest.class,
      responseType = dev.pushsvc.v1.ListTokensResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.ListTokensRequest,
      dev.pushsvc.v1.ListTokensResponse> getListTokensMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.ListTokensRequest, dev.pushsvc.v1.ListTokensResponse> getListTokensMethod;
    if ((getListTokensMethod = PushServiceGrpc.getListTokensMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getListTokensMethod = PushServiceGrpc.getListTokensMethod) == null) {
          PushServiceGrpc.getListTokensMethod = getListTokensMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.ListTokensRequest, dev.pushsvc.v1.ListTokensResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListTokens"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.ListTokensRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.ListTokensResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("ListTokens"))
              .build();
        }
      }
    }
    return getListTokensMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.pushsvc.v1.ListNotificationsRequest,
      dev.pushsvc.v1.ListNotificationsResponse> getListNotificationsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListNotifications",
      requestType = dev.pushsvc.v1.ListNotificationsRequest.class,
      responseType = dev.pushsvc.v1.ListNotificationsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.pushsvc.v1.ListNotificationsRequest,
      dev.pushsvc.v1.ListNotificationsResponse> getListNotificationsMethod() {
    io.grpc.MethodDescriptor<dev.pushsvc.v1.ListNotificationsRequest, dev.pushsvc.v1.ListNotificationsResponse> getListNotificationsMethod;
    if ((getListNotificationsMethod = PushServiceGrpc.getListNotificationsMethod) == null) {
      synchronized (PushServiceGrpc.class) {
        if ((getListNotificationsMethod = PushServiceGrpc.getListNotificationsMethod) == null) {
          PushServiceGrpc.getListNotificationsMethod = getListNotificationsMethod =
              io.grpc.MethodDescriptor.<dev.pushsvc.v1.ListNotificationsRequest, dev.pushsvc.v1.ListNotificationsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListNotifications"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.ListNotificationsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.pushsvc.v1.ListNotificationsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new PushServiceMethodDescriptorSupplier("ListNotifications"))
              .build();
        }
      }
    }
    return getListNotificationsMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static PushServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PushServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PushServiceStub>() {
        @java.lang.Override
        public PushServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PushServiceStub(channel, callOptions);
        }
      };
    return PushServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static PushServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PushServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PushServiceBlockingStub>() {
        @java.lang.Override
        public PushServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PushServiceBlockingStub(channel, callOptions);
        }
      };
    return PushServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static PushServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<PushServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<PushServiceFutureStub>() {
        @java.lang.Override
        public PushServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new PushServiceFutureStub(channel, callOptions);
        }
      };
    return PushServiceFutureStub.newStub(factory, channel);
  }

  /**
   * <pre>
   * PushService registers device tokens, sends notifications through APNs and
   * FCM, prunes stale tokens and streams one delivery receipt per token.
   * </pre>
   */
  public static abstract class PushServiceImplBase implements io.grpc.BindableService {

    /**
     * <pre>
     * Upserts a device token keyed by (app_id, platform, token).
     * </pre>
     */
    public void registerToken(dev.pushsvc.v1.RegisterTokenRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.RegisterTokenResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getRegisterTokenMethod(), responseObserver);
    }

    /**
     * <pre>
     * Registers up to 1,000 tokens of one app, each as RegisterToken would, and
     * answers one result per item. A bad item is reported in its result and the
     * others are still registered; retrying a whole batch is safe.
     * </pre>
     */
    public void registerTokens(dev.pushsvc.v1.RegisterTokensRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.RegisterTokensResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getRegisterTokensMethod(), responseObserver);
    }

    /**
     * <pre>
     * Removes a device token. Unknown tokens are not an error.
     * </pre>
     */
    public void unregisterToken(dev.pushsvc.v1.UnregisterTokenRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.UnregisterTokenResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getUnregisterTokenMethod(), responseObserver);
    }

    /**
     * <pre>
     * Durably accepts a notification for asynchronous fan-out.
     * </pre>
     */
    public void send(dev.pushsvc.v1.SendRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.SendResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getSendMethod(), responseObserver);
    }

    /**
     * <pre>
     * Returns a notification's state and delivery counters.
     * </pre>
     */
    public void getNotification(dev.pushsvc.v1.GetNotificationRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.GetNotificationResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetNotificationMethod(), responseObserver);
    }

    /**
     * <pre>
     * Removes tokens not seen for longer than stale_after.
     * </pre>
     */
    public void prune(dev.pushsvc.v1.PruneRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.PruneResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getPruneMethod(), responseObserver);
    }

    /**
     * <pre>
     * Streams delivery receipts: of one notification (ends by itself once it is
     * finished) or the app's live feed (runs until cancelled).
     * </pre>
     */
    public void streamReceipts(dev.pushsvc.v1.StreamReceiptsRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.StreamReceiptsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getStreamReceiptsMethod(), responseObserver);
    }

    /**
     * <pre>
     * Cancels a queued, scheduled or running notification: nothing new is sent
     * after the batches in flight, and every target not sent gets a receipt with
     * DELIVERY_STATUS_CANCELLED (one receipt per token still holds). The
     * notification settles CANCELLED once those receipts are written.
     * FAILED_PRECONDITION once the notification has finished; cancelling one
     * that is already cancelling is not an error.
     * </pre>
     */
    public void cancelNotification(dev.pushsvc.v1.CancelNotificationRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.CancelNotificationResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getCancelNotificationMethod(), responseObserver);
    }

    /**
     * <pre>
     * Returns one registered token; NOT_FOUND when it is not registered.
     * </pre>
     */
    public void getToken(dev.pushsvc.v1.GetTokenRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.GetTokenResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetTokenMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists an app's registered tokens, filtered, one page at a time.
     * </pre>
     */
    public void listTokens(dev.pushsvc.v1.ListTokensRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.ListTokensResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListTokensMethod(), responseObserver);
    }

    /**
     * <pre>
     * Lists an app's notifications, newest first, filtered, one page at a time.
     * </pre>
     */
    public void listNotifications(dev.pushsvc.v1.ListNotificationsRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.ListNotificationsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListNotificationsMethod(), responseObserver);
    }

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
          .addMethod(
            getRegisterTokenMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.pushsvc.v1.RegisterTokenRequest,
                dev.pushsvc.v1.RegisterTokenResponse>(
                  this, METHODID_REGISTER_TOKEN)))
          .addMethod(
            getRegisterTokensMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.pushsvc.v1.RegisterTokensRequest,
                dev.pushsvc.v1.RegisterTokensResponse>(
                  this, METHODID_REGISTER_TOKENS)))
          .addMethod(
            getUnregisterTokenMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.pushsvc.v1.UnregisterTokenRequest,
                dev.pushsvc.v1.UnregisterTokenResponse>(
                  this, METHODID_UNREGISTER_TOKEN)))
          .addMethod(
            getSendMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.pushsvc.v1.SendRequest,
                dev.pushsvc.v1.SendResponse>(
                  this, METHODID_SEND)))
          .addMethod(
            getGetNotificationMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.pushsvc.v1.GetNotificationRequest,
                dev.pushsvc.v1.GetNotificationResponse>(
                  this, METHODID_GET_NOTIFICATION)))
          .addMethod(
            getPruneMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.pushsvc.v1.PruneRequest,
                dev.pushsvc.v1.PruneResponse>(
                  this, METHODID_PRUNE)))
          .addMethod(
            getStreamReceiptsMethod(),
            io.grpc.stub.ServerCalls.asyncServerStreamingCall(
              new MethodHandlers<
                dev.pushsvc.v1.StreamReceiptsRequest,
                dev.pushsvc.v1.StreamReceiptsResponse>(
                  this, METHODID_STREAM_RECEIPTS)))
          .addMethod(
            getCancelNotificationMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.pushsvc.v1.CancelNotificationRequest,
                dev.pushsvc.v1.CancelNotificationResponse>(
                  this, METHODID_CANCEL_NOTIFICATION)))
          .addMethod(
            getGetTokenMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.pushsvc.v1.GetTokenRequest,
                dev.pushsvc.v1.GetTokenResponse>(
                  this, METHODID_GET_TOKEN)))
          .addMethod(
            getListTokensMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.pushsvc.v1.ListTokensRequest,
                dev.pushsvc.v1.ListTokensResponse>(
                  this, METHODID_LIST_TOKENS)))
          .addMethod(
            getListNotificationsMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.pushsvc.v1.ListNotificationsRequest,
                dev.pushsvc.v1.ListNotificationsResponse>(
                  this, METHODID_LIST_NOTIFICATIONS)))
          .build();
    }
  }

  /**
   * <pre>
   * PushService registers device tokens, sends notifications through APNs and
   * FCM, prunes stale tokens and streams one delivery receipt per token.
   * </pre>
   */
  public static final class PushServiceStub extends io.grpc.stub.AbstractAsyncStub<PushServiceStub> {
    private PushServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PushServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PushServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Upserts a device token keyed by (app_id, platform, token).
     * </pre>
     */
    public void registerToken(dev.pushsvc.v1.RegisterTokenRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.RegisterTokenResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getRegisterTokenMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Registers up to 1,000 tokens of one app, each as RegisterToken would, and
     * answers one result per item. A bad item is reported in its result and the
     * others are still registered; retrying a whole batch is safe.
     * </pre>
     */
    public void registerTokens(dev.pushsvc.v1.RegisterTokensRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.RegisterTokensResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getRegisterTokensMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Removes a device token. Unknown tokens are not an error.
     * </pre>
     */
    public void unregisterToken(dev.pushsvc.v1.UnregisterTokenRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.UnregisterTokenResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getUnregisterTokenMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Durably accepts a notification for asynchronous fan-out.
     * </pre>
     */
    public void send(dev.pushsvc.v1.SendRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.SendResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getSendMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Returns a notification's state and delivery counters.
     * </pre>
     */
    public void getNotification(dev.pushsvc.v1.GetNotificationRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.GetNotificationResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetNotificationMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Removes tokens not seen for longer than stale_after.
     * </pre>
     */
    public void prune(dev.pushsvc.v1.PruneRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.PruneResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getPruneMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Streams delivery receipts: of one notification (ends by itself once it is
     * finished) or the app's live feed (runs until cancelled).
     * </pre>
     */
    public void streamReceipts(dev.pushsvc.v1.StreamReceiptsRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.StreamReceiptsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncServerStreamingCall(
          getChannel().newCall(getStreamReceiptsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Cancels a queued, scheduled or running notification: nothing new is sent
     * after the batches in flight, and every target not sent gets a receipt with
     * DELIVERY_STATUS_CANCELLED (one receipt per token still holds). The
     * notification settles CANCELLED once those receipts are written.
     * FAILED_PRECONDITION once the notification has finished; cancelling one
     * that is already cancelling is not an error.
     * </pre>
     */
    public void cancelNotification(dev.pushsvc.v1.CancelNotificationRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.CancelNotificationResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getCancelNotificationMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Returns one registered token; NOT_FOUND when it is not registered.
     * </pre>
     */
    public void getToken(dev.pushsvc.v1.GetTokenRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.GetTokenResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetTokenMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists an app's registered tokens, filtered, one page at a time.
     * </pre>
     */
    public void listTokens(dev.pushsvc.v1.ListTokensRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.ListTokensResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListTokensMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Lists an app's notifications, newest first, filtered, one page at a time.
     * </pre>
     */
    public void listNotifications(dev.pushsvc.v1.ListNotificationsRequest request,
        io.grpc.stub.StreamObserver<dev.pushsvc.v1.ListNotificationsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListNotificationsMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   * <pre>
   * PushService registers device tokens, sends notifications through APNs and
   * FCM, prunes stale tokens and streams one delivery receipt per token.
   * </pre>
   */
  public static final class PushServiceBlockingStub extends io.grpc.stub.AbstractBlockingStub<PushServiceBlockingStub> {
    private PushServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PushServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PushServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Upserts a device token keyed by (app_id, platform, token).
     * </pre>
     */
    public dev.pushsvc.v1.RegisterTokenResponse registerToken(dev.pushsvc.v1.RegisterTokenRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getRegisterTokenMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Registers up to 1,000 tokens of one app, each as RegisterToken would, and
     * answers one result per item. A bad item is reported in its result and the
     * others are still registered; retrying a whole batch is safe.
     * </pre>
     */
    public dev.pushsvc.v1.RegisterTokensResponse registerTokens(dev.pushsvc.v1.RegisterTokensRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getRegisterTokensMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Removes a device token. Unknown tokens are not an error.
     * </pre>
     */
    public dev.pushsvc.v1.UnregisterTokenResponse unregisterToken(dev.pushsvc.v1.UnregisterTokenRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getUnregisterTokenMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Durably accepts a notification for asynchronous fan-out.
     * </pre>
     */
    public dev.pushsvc.v1.SendResponse send(dev.pushsvc.v1.SendRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getSendMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns a notification's state and delivery counters.
     * </pre>
     */
    public dev.pushsvc.v1.GetNotificationResponse getNotification(dev.pushsvc.v1.GetNotificationRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetNotificationMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Removes tokens not seen for longer than stale_after.
     * </pre>
     */
    public dev.pushsvc.v1.PruneResponse prune(dev.pushsvc.v1.PruneRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getPruneMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Streams delivery receipts: of one notification (ends by itself once it is
     * finished) or the app's live feed (runs until cancelled).
     * </pre>
     */
    public java.util.Iterator<dev.pushsvc.v1.StreamReceiptsResponse> streamReceipts(
        dev.pushsvc.v1.StreamReceiptsRequest request) {
      return io.grpc.stub.ClientCalls.blockingServerStreamingCall(
          getChannel(), getStreamReceiptsMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Cancels a queued, scheduled or running notification: nothing new is sent
     * after the batches in flight, and every target not sent gets a receipt with
     * DELIVERY_STATUS_CANCELLED (one receipt per token still holds). The
     * notification settles CANCELLED once those receipts are written.
     * FAILED_PRECONDITION once the notification has finished; cancelling one
     * that is already cancelling is not an error.
     * </pre>
     */
    public dev.pushsvc.v1.CancelNotificationResponse cancelNotification(dev.pushsvc.v1.CancelNotificationRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getCancelNotificationMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Returns one registered token; NOT_FOUND when it is not registered.
     * </pre>
     */
    public dev.pushsvc.v1.GetTokenResponse getToken(dev.pushsvc.v1.GetTokenRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetTokenMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists an app's registered tokens, filtered, one page at a time.
     * </pre>
     */
    public dev.pushsvc.v1.ListTokensResponse listTokens(dev.pushsvc.v1.ListTokensRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListTokensMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Lists an app's notifications, newest first, filtered, one page at a time.
     * </pre>
     */
    public dev.pushsvc.v1.ListNotificationsResponse listNotifications(dev.pushsvc.v1.ListNotificationsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListNotificationsMethod(), getCallOptions(), request);
    }
  }

  /**
   * <pre>
   * PushService registers device tokens, sends notifications through APNs and
   * FCM, prunes stale tokens and streams one delivery receipt per token.
   * </pre>
   */
  public static final class PushServiceFutureStub extends io.grpc.stub.AbstractFutureStub<PushServiceFutureStub> {
    private PushServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected PushServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new PushServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Upserts a device token keyed by (app_id, platform, token).
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.pushsvc.v1.RegisterTokenResponse> registerToken(
        dev.pushsvc.v1.RegisterTokenRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getRegisterTokenMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Registers up to 1,000 tokens of one app, each as RegisterToken would, and
     * answers one result per item. A bad item is reported in its result and the
     * others are still registered; retrying a whole batch is safe.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.pushsvc.v1.RegisterTokensResponse> registerTokens(
        dev.pushsvc.v1.RegisterTokensRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getRegisterTokensMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Removes a device token. Unknown tokens are not an error.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.pushsvc.v1.UnregisterTokenResponse> unregisterToken(
        dev.pushsvc.v1.UnregisterTokenRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getUnregisterTokenMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Durably accepts a notification for asynchronous fan-out.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.pushsvc.v1.SendResponse> send(
        dev.pushsvc.v1.SendRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getSendMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Returns a notification's state and delivery counters.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.pushsvc.v1.GetNotificationResponse> getNotification(
        dev.pushsvc.v1.GetNotificationRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetNotificationMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Removes tokens not seen for longer than stale_after.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.pushsvc.v1.PruneResponse> prune(
        dev.pushsvc.v1.PruneRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getPruneMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Cancels a queued, scheduled or running notification: nothing new is sent
     * after the batches in flight, and every target not sent gets a receipt with
     * DELIVERY_STATUS_CANCELLED (one receipt per token still holds). The
     * notification settles CANCELLED once those receipts are written.
     * FAILED_PRECONDITION once the notification has finished; cancelling one
     * that is already cancelling is not an error.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.pushsvc.v1.CancelNotificationResponse> cancelNotification(
        dev.pushsvc.v1.CancelNotificationRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getCancelNotificationMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Returns one registered token; NOT_FOUND when it is not registered.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.pushsvc.v1.GetTokenResponse> getToken(
        dev.pushsvc.v1.GetTokenRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetTokenMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists an app's registered tokens, filtered, one page at a time.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.pushsvc.v1.ListTokensResponse> listTokens(
        dev.pushsvc.v1.ListTokensRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListTokensMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Lists an app's notifications, newest first, filtered, one page at a time.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.pushsvc.v1.ListNotificationsResponse> listNotifications(
        dev.pushsvc.v1.ListNotificationsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListNotificationsMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_REGISTER_TOKEN = 0;
  private static final int METHODID_REGISTER_TOKENS = 1;
  private static final int METHODID_UNREGISTER_TOKEN = 2;
  private static final int METHODID_SEND = 3;
  private static final int METHODID_GET_NOTIFICATION = 4;
  private static final int METHODID_PRUNE = 5;
  private static final int METHODID_STREAM_RECEIPTS = 6;
  private static final int METHODID_CANCEL_NOTIFICATION = 7;
  private static final int METHODID_GET_TOKEN = 8;
  private static final int METHODID_LIST_TOKENS = 9;
  private static final int METHODID_LIST_NOTIFICATIONS = 10;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final PushServiceImplBase serviceImpl;
    private final int methodId;

    MethodHandlers(PushServiceImplBase serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_REGISTER_TOKEN:
          serviceImpl.registerToken((dev.pushsvc.v1.RegisterTokenRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.RegisterTokenResponse>) responseObserver);
          break;
        case METHODID_REGISTER_TOKENS:
          serviceImpl.registerTokens((dev.pushsvc.v1.RegisterTokensRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.RegisterTokensResponse>) responseObserver);
          break;
        case METHODID_UNREGISTER_TOKEN:
          serviceImpl.unregisterToken((dev.pushsvc.v1.UnregisterTokenRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.UnregisterTokenResponse>) responseObserver);
          break;
        case METHODID_SEND:
          serviceImpl.send((dev.pushsvc.v1.SendRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.SendResponse>) responseObserver);
          break;
        case METHODID_GET_NOTIFICATION:
          serviceImpl.getNotification((dev.pushsvc.v1.GetNotificationRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.GetNotificationResponse>) responseObserver);
          break;
        case METHODID_PRUNE:
          serviceImpl.prune((dev.pushsvc.v1.PruneRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.PruneResponse>) responseObserver);
          break;
        case METHODID_STREAM_RECEIPTS:
          serviceImpl.streamReceipts((dev.pushsvc.v1.StreamReceiptsRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.StreamReceiptsResponse>) responseObserver);
          break;
        case METHODID_CANCEL_NOTIFICATION:
          serviceImpl.cancelNotification((dev.pushsvc.v1.CancelNotificationRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.CancelNotificationResponse>) responseObserver);
          break;
        case METHODID_GET_TOKEN:
          serviceImpl.getToken((dev.pushsvc.v1.GetTokenRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.GetTokenResponse>) responseObserver);
          break;
        case METHODID_LIST_TOKENS:
          serviceImpl.listTokens((dev.pushsvc.v1.ListTokensRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.ListTokensResponse>) responseObserver);
          break;
        case METHODID_LIST_NOTIFICATIONS:
          serviceImpl.listNotifications((dev.pushsvc.v1.ListNotificationsRequest) request,
              (io.grpc.stub.StreamObserver<dev.pushsvc.v1.ListNotificationsResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        default:
          throw new AssertionError();
      }
    }
  }

  private static abstract class PushServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    PushServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.pushsvc.v1.PushProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("PushService");
    }
  }

  private static final class PushServiceFileDescriptorSupplier
      extends PushServiceBaseDescriptorSupplier {
    PushServiceFileDescriptorSupplier() {}
  }

  private static final class PushServiceMethodDescriptorSupplier
      extends PushServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final String methodName;

    PushServiceMethodDescriptorSupplier(String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (PushServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new PushServiceFileDescriptorSupplier())
              .addMethod(getRegisterTokenMethod())
              .addMethod(getRegisterTokensMethod())
              .addMethod(getUnregisterTokenMethod())
              .addMethod(getSendMethod())
              .addMethod(getGetNotificationMethod())
              .addMethod(getPruneMethod())
              .addMethod(getStreamReceiptsMethod())
              .addMethod(getCancelNotificationMethod())
              .addMethod(getGetTokenMethod())
              .addMethod(getListTokensMethod())
              .addMethod(getListNotificationsMethod())
              .build();
        }
      }
    }
    return result;
  }
}
