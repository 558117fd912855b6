"""`pushsvc webpush keys`: what an operator needs to set Web Push up."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushsvc.channels.webpush.vapid import application_server_key, raw_private_key


def print_keys() -> int:
    """`pushsvc webpush keys`: a new VAPID key pair, and the applicationServerKey a page subscribes with."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    print("A new VAPID key pair. Keep the private key secret: put the PEM in a file (mode 0600) named by")
    print("[apps.<app_id>.webpush] vapid_private_key_file, or either form in the variable vapid_private_key_env names.\n")
    print(pem.decode(), end="")
    print(f"\nprivate key (base64url): {raw_private_key(key)}")
    print(f"public key / applicationServerKey: {application_server_key(key)}\n")
    print("A page subscribes with: registration.pushManager.subscribe({userVisibleOnly: true, "
          f"applicationServerKey: '{application_server_key(key)}'}})")
    return 0
