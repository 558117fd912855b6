// Registers a token, sends to it, and streams its receipts until the stream ends.
//
//   npm run build && node dist/examples/send-and-follow.js [host:port] [app]
import { randomBytes } from "node:crypto";

import {
  connect,
  DeliveryStatus,
  deliveryStatusToJSON,
  Platform,
  ReceiptFollower,
  RegisterTokenRequest,
  type RegisterTokenResponse,
  SendRequest,
  type SendResponse,
  unary,
} from "../src";

async function main(): Promise<void> {
  const target = process.argv[2] ?? "localhost:50051";
  const app = process.argv[3] ?? "demo";
  const client = connect(target);
  try {
    const token = "ab" + randomBytes(31).toString("hex");
    const register = RegisterTokenRequest.fromPartial({
      appId: app, token, platform: Platform.PLATFORM_APNS, userId: "example-user",
    });
    await unary<RegisterTokenResponse>((cb) => client.registerToken(register, cb));
    const request = SendRequest.fromPartial({
      appId: app,
      target: { devices: { devices: [{ token, platform: Platform.PLATFORM_APNS }] } },
      message: { title: "Hello", body: "from the pushsvc TypeScript client" },
    });
    const sent = await unary<SendResponse>((cb) => client.send(request, cb));
    console.log(`notification ${sent.notificationId}`);
    for await (const r of new ReceiptFollower(client, app, sent.notificationId)) {
      const name = deliveryStatusToJSON(r.status as DeliveryStatus);
      console.log(`${r.token.slice(0, 12)}… ${name} after ${r.attempts} attempt(s)`);
    }
    console.log("stream ended with OK");
  } finally {
    client.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
