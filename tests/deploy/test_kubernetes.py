"""deploy/kubernetes: valid against the Kubernetes schemas offline, and in agreement with the code."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pushsvc.config import ConfigError, Settings, check_serve, load_settings
from pushsvc.rpc.server import LIVENESS_SERVICE
from scripts.config_reference import rows
from tests.deploy.manifests import BASE, DEPLOY, build, by_kind, kustomize_command, read_base

SECRET_EXAMPLE = BASE / "secret.example.yaml"
K8S_VERSION = kubernetes_validate.latest_version()


@pytest.fixture(scope="module")
def base() -> dict[str, dict[str, Any]]:
    return by_kind(build(BASE))


def _container(base: dict[str, dict[str, Any]]) -> dict[str, Any]:
    [container] = base["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def _port(container: dict[str, Any], name: str) -> int:
    [port] = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    return port


def _config_toml(base: dict[str, dict[str, Any]]) -> str:
    return base["ConfigMap"]["data"]["config.toml"]


def _secret() -> dict[str, Any]:
    return yaml.safe_load(SECRET_EXAMPLE.read_text())


def _settings(base: dict[str, dict[str, Any]], tmp_path: Path) -> Settings:
    """config.toml as serve loads it in the pod, with the example Secret mounted as secrets_dir."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for key, value in _secret()["stringData"].items():
        (secrets / key).write_text(value)
    path = tmp_path / "config.toml"
    path.write_text(_config_toml(base))
    return load_settings(path, env={"PUSHSVC_SECRETS_DIR": str(secrets), "PUSHSVC_DISPATCH_REPLICA_ID": "pushsvc-abc"})


def test_the_base_has_every_piece(base: dict[str, dict[str, Any]]) -> None:
    assert set(base) == {
        "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "ConfigMap"
    }


def test_every_manifest_validates_against_the_kubernetes_schemas(base: dict[str, dict[str, Any]]) -> None:
    for doc in [*base.values(), _secret()]:
        # strict: an unknown field (a typo, a field of another version) is an error too.
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_does_catch_mistakes(base: dict[str, dict[str, Any]]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(base["Deployment"]))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    broken = yaml.safe_load(yaml.safe_dump(base["Service"]))
    broken["spec"]["ports"][0]["app_protocol"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_ports_and_probes_agree_with_the_config(base: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    settings = _settings(base, tmp_path)
    container = _container(base)
    assert _port(container, "grpc") == settings.port == 50051
    assert _port(container, "metrics") == settings.metrics_port == 9090
    # Native gRPC health checking. Readiness asks the server's health (the store
    # counts); liveness and startup ask the name that says the process works.
    assert container["readinessProbe"]["grpc"] == {"port": settings.port}
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": settings.port, "service": LIVENESS_SERVICE}, probe
    service_ports = {p["name"]: p for p in base["Service"]["spec"]["ports"]}
    assert service_ports["grpc"]["appProtocol"] == "grpc"
    assert {p["targetPort"] for p in service_ports.values()} == {"grpc", "metrics"}
    assert (service_ports["grpc"]["port"], service_ports["metrics"]["port"]) == (settings.port, settings.metrics_port)
    annotations = base["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(settings.metrics_port)
    ingress_ports = {p["port"] for rule in base["NetworkPolicy"]["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {settings.port, settings.metrics_port}
    [monitor] = yaml.safe_load_all((DEPLOY / "kubernetes/components/servicemonitor/servicemonitor.yaml").read_text())
    assert monitor["kind"] == "ServiceMonitor" and [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


def test_the_grace_period_outlasts_the_drain(base: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    settings = _settings(base, tmp_path)
    pod = base["Deployment"]["spec"]["template"]["spec"]
    assert settings.grace_s == 25.0
    # The preStop pause comes first and counts towards the grace period.
    [container] = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause_s = float(command[1])
    assert 2 <= pause_s <= 15
    assert pod["terminationGracePeriodSeconds"] > pause_s + settings.grace_s


def test_the_autoscaler_alone_sets_the_replica_count(base: dict[str, dict[str, Any]]) -> None:
    # A replicas field beside an HPA resets the count at every apply.
    assert "replicas" not in base["Deployment"]["spec"]
    assert base["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2


def test_environment_names_are_settings(base: dict[str, dict[str, Any]]) -> None:
    documented = {row.env for row in rows()}
    env = _container(base)["env"]
    assert env == [{"name": "PUSHSVC_DISPATCH_REPLICA_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    for var in env:
        assert var["name"] in documented
    assert load_settings(None, env={"PUSHSVC_DISPATCH_REPLICA_ID": "pushsvc-7d9f-x2"}).dispatch.replica_id == "pushsvc-7d9f-x2"
    for key in _secret()["stringData"]:
        assert not key.startswith("PUSHSVC_") or key in documented, key
    # Service links would add PUSHSVC_PORT=tcp://...; pushsvc would refuse it as its port.
    assert base["Deployment"]["spec"]["template"]["spec"]["enableServiceLinks"] is False
    with pytest.raises(ConfigError, match="port: Input should be a valid integer"):
        load_settings(None, env={"PUSHSVC_PORT": "tcp://10.0.0.7:50051"})


def test_the_config_map_loads_and_passes_serves_checks(base: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    settings = _settings(base, tmp_path)
    check_serve(settings)
    # The Secret's PUSHSVC_STORE_URL, through secrets_dir, beats the file's password-less URL.
    assert settings.store_url == _secret()["stringData"]["PUSHSVC_STORE_URL"]
    assert settings.dispatch.replica_id == "pushsvc-abc"
    # Every file the config names is a key of the Secret, at the Secret's mount path.
    mounts = {m["name"]: m["mountPath"] for m in _container(base)["volumeMounts"]}
    volumes = {v["name"]: v for v in base["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["secrets"]["secret"]["secretName"] == _secret()["metadata"]["name"]
    secrets_dir = Path(tomllib.loads(_config_toml(base))["secrets_dir"])
    assert Path(mounts["secrets"]) == secrets_dir
    app = settings.apps["demo"]
    assert app.apns is not None and app.fcm is not None
    files = [app.apns.key_file, app.fcm.service_account_file, *(k.hash_file for k in settings.auth.api_keys)]
    assert {f.parent for f in files if f} == {secrets_dir} and all(files)
    assert {f.name for f in files if f} <= set(_secret()["stringData"])
    # serve reads the ConfigMap's config.toml where the Deployment mounts it.
    args = _container(base)["args"]
    config_path = Path(args[args.index("--config") + 1])
    assert volumes["config"]["configMap"]["name"] == base["ConfigMap"]["metadata"]["name"]
    assert config_path == Path(mounts["config"]) / "config.toml"


def test_check_config_accepts_the_base_config() -> None:
    # The command of docs/operations/deployment.md, off the cluster: the Secret's directory is missing, which is only noted.
    out = subprocess.run(
        [str(Path(sys.executable).parent / "pushsvc"), "check-config", "--no-secrets", str(BASE / "config.toml")],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert "apps:  demo (apns+fcm)" in out.stdout and "secrets_dir: /run/secrets/pushsvc (not found here" in out.stdout
    assert tomllib.loads((BASE / "config.toml").read_text())["grace_s"] == 25.0
    # Without the flag it reads what serve reads, and the Secret's files are not here.
    out = subprocess.run(
        [str(Path(sys.executable).parent / "pushsvc"), "check-config", str(BASE / "config.toml")],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2
    assert "  apps.demo.apns.key_file: cannot read /run/secrets/pushsvc/apns-demo.p8: No such file or directory" in out.stderr
    assert "  auth.api_keys[0].hash_file: cannot read /run/secrets/pushsvc/api-key-backend.hash: No such file or directory" in out.stderr


def test_selectors_and_targets_line_up(base: dict[str, dict[str, Any]]) -> None:
    deployment = base["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        base["Service"]["spec"]["selector"],
        base["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        base["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    target = base["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert base["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert _container(base)["securityContext"]["readOnlyRootFilesystem"] is True
    assert _container(base)["resources"]["requests"] and _container(base)["resources"]["limits"]["memory"]


@pytest.mark.skipif(kustomize_command() is None, reason="neither kustomize nor kubectl is installed")
def test_the_fallback_reader_matches_kustomize() -> None:
    # Without kustomize the tests read the base themselves; that reading must be what kustomize builds.
    built = by_kind(build(BASE))
    read = by_kind(read_base(BASE))
    assert set(built) == set(read)
    # kustomize adds labels, the image tag and the ConfigMap's hash; what the tests read is the same.
    assert built["ConfigMap"]["data"] == read["ConfigMap"]["data"]
    for kind in ("Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"):
        assert built[kind]["spec"] == read[kind]["spec"], kind
    assert built["ConfigMap"]["metadata"]["name"].startswith("pushsvc-config-")
    assert built["Deployment"]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == built["ConfigMap"]["metadata"]["name"]
    assert _container(built)["image"] == "pushsvc:0.1.0"
    overlay = by_kind(build(DEPLOY / "kubernetes/overlays/prometheus-operator"))
    assert set(overlay) == set(read) | {"ServiceMonitor"}
