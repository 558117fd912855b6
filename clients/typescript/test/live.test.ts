// These tests run against a live `pushsvc dev` that tests/clients starts; they
// skip when PUSHSVC_TARGET is unset. The resume test also takes PUSHSVC_CUT_DIR
// and PUSHSVC_CUT_AFTER: after that many receipts it creates CUT_DIR/ready and
// waits for CUT_DIR/go while the driver restarts the server. Each test writes its
// findings to PUSHSVC_RESULT_DIR/<test>.json.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import {
  connect,
  DeliveryStatus,
  Platform,
  type PushServiceClient,
  type Receipt,
  ReceiptFollower,
  RegisterTokenRequest,
  type RegisterTokenResponse,
  SendRequest,
  type SendResponse,
  StreamReceiptsRequest,
  unary,
} from "../src";

const TARGET = process.env.PUSHSVC_TARGET ?? "";
const APP = process.env.PUSHSVC_APP_ID ?? "demo";
const CUT_DIR = process.env.PUSHSVC_CUT_DIR ?? "";
const CUT_AFTER = Number(process.env.PUSHSVC_CUT_AFTER ?? "50");

const hex = (n: number): string => randomBytes(n).toString("hex");

function writeResult(name: string, result: object): void {
  writeFileSync(join(process.env.PUSHSVC_RESULT_DIR ?? ".", `${name}.json`), JSON.stringify(result));
}

async function registerAndSend(
  client: PushServiceClient,
  user: string,
  tokens: Array<[string, Platform]>,
): Promise<string> {
  for (const [token, platform] of tokens) {
    const req = RegisterTokenRequest.fromPartial({ appId: APP, token, platform, userId: user });
    await unary<RegisterTokenResponse>((cb) => client.registerToken(req, cb));
  }
  const send = SendRequest.fromPartial({
    appId: APP,
    target: { users: { userIds: [user] } },
    message: { title: "client test", body: "typescript" },
  });
  const sent = await unary<SendResponse>((cb) => client.send(send, cb));
  return sent.notificationId;
}

test("smoke", { skip: TARGET ? false : "PUSHSVC_TARGET is not set (tests/clients sets it)", timeout: 60_000 }, async () => {
  const client = connect(TARGET);
  try {
    const user = `smoke-ts-${hex(4)}`;
    const ok = "ab" + hex(31);
    const dead = "0410" + hex(30);
    const fcm = `ts-smoke-${hex(6)}`;
    const nid = await registerAndSend(client, user, [
      [ok, Platform.PLATFORM_APNS],
      [dead, Platform.PLATFORM_APNS],
      [fcm, Platform.PLATFORM_FCM],
    ]);
    // The generated stub itself: the stream ends by itself, with OK.
    const call = client.streamReceipts(StreamReceiptsRequest.fromPartial({ appId: APP, notificationId: nid }));
    const ended = new Promise<number>((resolve) => call.on("status", (s) => resolve(s.code)));
    const receipts: Receipt[] = [];
    for await (const response of call) receipts.push(response.receipt as Receipt);
    assert.equal(await ended, 0, "the stream ends with OK");
    const statuses = Object.fromEntries(receipts.map((r) => [r.token, r.status]));
    assert.deepEqual(statuses, {
      [ok]: DeliveryStatus.DELIVERY_STATUS_DELIVERED,
      [dead]: DeliveryStatus.DELIVERY_STATUS_TOKEN_INVALID,
      [fcm]: DeliveryStatus.DELIVERY_STATUS_DELIVERED,
    });
    assert.equal(new Set(receipts.map((r) => r.cursor).filter(Boolean)).size, 3);
    writeResult("smoke", { notification_id: nid, receipts: receipts.length, status: "OK" });
  } finally {
    client.close();
  }
});

test("resume", { skip: CUT_DIR && TARGET ? false : "PUSHSVC_CUT_DIR is not set: only tests/clients can restart the server", timeout: 180_000 }, async () => {
  const client = connect(TARGET);
  try {
    const user = `resume-ts-${hex(4)}`;
    const run = hex(4);
    // quota- tokens answer 429 with Retry-After: 1 first, so the notification is
    // still running when the stream is cut.
    const tokens: Array<[string, Platform]> = [];
    for (let i = 0; i < 200; i++) tokens.push(["ab" + hex(31), Platform.PLATFORM_APNS]);
    for (let i = 0; i < 100; i++) tokens.push([`quota-${run}-${i}`, Platform.PLATFORM_FCM]);
    const nid = await registerAndSend(client, user, tokens);

    const follower = new ReceiptFollower(client, APP, nid, { resumeTimeoutMs: 60_000 });
    const seen: Receipt[] = [];
    for await (const receipt of follower) {
      seen.push(receipt);
      if (seen.length === CUT_AFTER) {
        writeFileSync(join(CUT_DIR, "ready"), "");
        const deadline = Date.now() + 90_000;
        while (!existsSync(join(CUT_DIR, "go"))) {
          assert.ok(Date.now() < deadline, "the driver never restarted the server");
          await sleep(50);
        }
      }
    }
    const got = seen.map((r) => r.token);
    assert.equal(got.length, tokens.length);
    assert.deepEqual(new Set(got), new Set(tokens.map(([t]) => t)));
    assert.equal(new Set(seen.map((r) => r.cursor)).size, tokens.length);
    assert.ok(follower.resumes >= 1, "the stream was never cut");
    assert.ok(seen.every((r) => r.status === DeliveryStatus.DELIVERY_STATUS_DELIVERED));
    writeResult("resume", {
      notification_id: nid,
      receipts: got.length,
      unique_tokens: new Set(got).size,
      unique_cursors: new Set(seen.map((r) => r.cursor)).size,
      resumes: follower.resumes,
      status: "OK",
    });
  } finally {
    client.close();
  }
});
