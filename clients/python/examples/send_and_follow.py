"""Registers a token, sends to it, and streams its receipts until the stream ends.

    python examples/send_and_follow.py [--server localhost:50051] [--app demo]
"""

from __future__ import annotations

import argparse
import secrets

from pushsvc_client import ReceiptStream, connect
from pushsvc_client.v1 import push_pb2, push_pb2_grpc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="localhost:50051")
    parser.add_argument("--app", default="demo")
    args = parser.parse_args()

    with connect(args.server) as channel:
        stub = push_pb2_grpc.PushServiceStub(channel)
        token = "ab" + secrets.token_hex(31)
        stub.RegisterToken(
            push_pb2.RegisterTokenRequest(
                app_id=args.app, token=token, platform=push_pb2.PLATFORM_APNS, user_id="example-user"
            )
        )
        sent = stub.Send(
            push_pb2.SendRequest(
                app_id=args.app,
                target=push_pb2.Target(
                    devices=push_pb2.DeviceList(devices=[push_pb2.Device(token=token, platform=push_pb2.PLATFORM_APNS)])
                ),
                message=push_pb2.Message(title="Hello", body="from the pushsvc Python client"),
            )
        )
        print(f"notification {sent.notification_id}")
        for receipt in ReceiptStream(stub, args.app, sent.notification_id):
            status = push_pb2.DeliveryStatus.Name(receipt.status)
            print(f"{receipt.token[:12]}… {status} after {receipt.attempts} attempt(s)")
        print("stream ended with OK")


if __name__ == "__main__":
    main()
