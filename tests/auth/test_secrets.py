"""Provider secrets from environment variables, as a Kubernetes Secret exposed through `env` gives them."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from pushsvc.bootstrap import build_application
from pushsvc.config import ConfigError, load_settings
from pushsvc.emulator import Emulator, EmulatorConfig, make_demo_credentials
from pushsvc.v1 import push_pb2 as pb
from pushsvc.v1 import push_pb2_grpc


async def test_provider_keys_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with Emulator(EmulatorConfig()) as emulator:
        credentials, apns_key, fcm_account = make_demo_credentials(
            tmp_path / "demo", token_uri=emulator.token_uri, ca_pem=emulator.ca_pem
        )
        emulator.add_apns_key(apns_key)
        emulator.add_fcm_account(fcm_account)
        monkeypatch.setenv("SHOP_APNS_P8", credentials.apns_key_file.read_text())
        monkeypatch.setenv("SHOP_FCM_SA", credentials.fcm_service_account_file.read_text())
        config = tmp_path / "pushsvc.toml"
        config.write_text(
            f'store_url = "mongomock://localhost/t{uuid.uuid4().hex[:8]}"\nhost = "127.0.0.1"\nport = 0\n'
            f'[apps.shop.apns]\nbundle_id = "{credentials.apns_bundle_id}"\nkey_env = "SHOP_APNS_P8"\n'
            f'key_id = "{credentials.apns_key_id}"\nteam_id = "{credentials.apns_team_id}"\n'
            f'production_url = "{emulator.apns_url}"\nsandbox_url = "{emulator.apns_sandbox_url}"\nca_file = "{credentials.ca_file}"\n'
            f'[apps.shop.fcm]\nservice_account_env = "SHOP_FCM_SA"\nbase_url = "{emulator.fcm_url}"\nca_file = "{credentials.ca_file}"\n'
        )
        app = build_application(load_settings(config, env={}))
        port = await app.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = push_pb2_grpc.PushServiceStub(channel)
                devices = [pb.Device(token="ab" * 32, platform=pb.PLATFORM_APNS), pb.Device(token="env-fcm", platform=pb.PLATFORM_FCM)]
                sent = await stub.Send(
                    pb.SendRequest(app_id="shop", target=pb.Target(devices=pb.DeviceList(devices=devices)), message=pb.Message(title="env")),
                    timeout=10,
                )
                receipts = [
                    r.receipt.status
                    async for r in stub.StreamReceipts(
                        pb.StreamReceiptsRequest(app_id="shop", notification_id=sent.notification_id), timeout=30
                    )
                ]
        finally:
            await app.stop(0)
    assert receipts == [pb.DELIVERY_STATUS_DELIVERED] * 2


def test_a_missing_provider_secret_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_SA", raising=False)
    config = tmp_path / "pushsvc.toml"
    config.write_text('[apps.shop.fcm]\nservice_account_env = "NOPE_SA"\n')
    with pytest.raises(ConfigError, match=r"apps.shop.fcm.service_account_env: environment variable NOPE_SA is not set"):
        build_application(load_settings(config, env={}))
    config.write_text('[apps.shop.fcm]\nproject_id = "p"\n')
    with pytest.raises(ConfigError, match="exactly one of service_account_file, service_account_env"):
        load_settings(config, env={})
