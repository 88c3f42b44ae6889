"""The Docker host's figures for /hub/metrics (formspawner.metrics).

The engine is a stand-in (docker-py's low-level answers as dicts); the molecule scenario
scrapes the real /hub/metrics of a deployed hub with the real engine.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, generate_latest

from formspawner.labels import REPO_LABEL
from formspawner.metrics import DockerFigures, read_figures

GB = 2**30


class Engine:
    def __init__(self, root):
        self.root = root
        self.reads = 0

    def df(self):
        self.reads += 1
        return {
            "LayersSize": 5 * GB,
            "Images": [
                {"Id": "base", "Size": GB, "SharedSize": GB, "Labels": {}},
                {"Id": "built", "Size": 3 * GB, "SharedSize": GB, "Labels": {REPO_LABEL: "1"}},
            ],
            "Volumes": [{"Name": "jupyterhub-user-ada", "UsageData": {"Size": 2 * GB}},
                        {"Name": "in-use-unknown", "UsageData": {"Size": -1}}],
            "BuildCache": [{"Size": 100}, {"Size": 23}],
        }

    def containers(self, all, filters):
        assert all and filters == {"label": "org.formspawner.options"}
        ada = {"org.formspawner.options": "x", "org.formspawner.user": "ada"}
        return [
            {"State": "running", "Labels": ada},
            {"State": "exited", "Labels": ada},
            {"State": "running", "Labels": {"org.formspawner.options": "x", "org.formspawner.user": "bob"}},
            {"State": "running", "Labels": {"org.formspawner.options": "x"}},  # made before the user label
        ]

    def info(self):
        return {"DockerRootDir": str(self.root)}


def test_the_figures_a_docker_host_needs(tmp_path):
    figures = read_figures(Engine(tmp_path))
    assert figures["images_bytes"] == 5 * GB
    assert figures["volumes_bytes"] == 2 * GB, "a size Docker did not compute (-1) counts as nothing"
    assert figures["build_cache_bytes"] == 123
    assert figures["repo_images"] == 1 and figures["repo_images_bytes"] == 2 * GB
    assert figures["user_containers"] == {"running": 3, "stopped": 1}
    assert figures["user_containers_per_user_max"] == 2
    assert 0 < figures["disk_free_bytes"] <= figures["disk_size_bytes"]


def test_no_disk_figures_when_the_engine_is_elsewhere(tmp_path):
    figures = read_figures(Engine(tmp_path / "not-here"))
    assert "disk_free_bytes" not in figures and figures["images_bytes"] == 5 * GB


def scrape(registry) -> str:
    return generate_latest(registry).decode()


def test_registering_reads_nothing_and_a_scrape_never_waits_for_docker(tmp_path):
    engine = Engine(tmp_path)
    gate = threading.Event()

    def slow_client():
        gate.wait(10)
        return engine

    registry = CollectorRegistry()
    figures = DockerFigures(interval=300, client_factory=slow_client)
    registry.register(figures)
    assert engine.reads == 0
    started = time.monotonic()
    assert "formspawner_docker_images_bytes" not in scrape(registry)
    assert time.monotonic() - started < 1, "the first scrape returns at once, the read goes on behind it"
    gate.set()
    deadline = time.monotonic() + 10
    while "formspawner_docker_images_bytes" not in (text := scrape(registry)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "formspawner_docker_images_bytes 5.36870912e+09" in text
    assert 'formspawner_docker_user_containers{state="running"} 3.0' in text
    assert "formspawner_docker_figures_age_seconds" in text
    # Fresh figures are reused: no new read within the interval.
    scrape(registry)
    assert engine.reads == 1


def test_a_failing_engine_keeps_the_last_figures_and_their_age_grows(tmp_path):
    engine = Engine(tmp_path)
    calls = []

    def client():
        calls.append(1)
        if len(calls) > 1:
            raise ConnectionError("docker is down")
        return engine

    registry = CollectorRegistry()
    figures = DockerFigures(interval=0, client_factory=client)
    registry.register(figures)
    deadline = time.monotonic() + 10
    while "formspawner_docker_images_bytes" not in scrape(registry) and time.monotonic() < deadline:
        time.sleep(0.05)
    while len(calls) < 3 and time.monotonic() < deadline:
        scrape(registry)
        time.sleep(0.05)
    assert len(calls) >= 3 and "formspawner_docker_images_bytes 5.36870912e+09" in scrape(registry)


def test_the_served_certificate_days_left_come_from_the_file(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from formspawner.metrics import ServedCertificate, certificate_days_left

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub.example.edu")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=35))
                   .sign(key, hashes.SHA256()))
    served = tmp_path / "cert.pem"
    served.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    assert 34.99 < certificate_days_left(str(served)) <= 35
    assert -1.01 < certificate_days_left(str(served), now=(now + datetime.timedelta(days=36)).timestamp()) < -0.99
    [family] = ServedCertificate(str(served)).collect()
    assert family.name == "formspawner_tls_certificate_expiry_days" and 34.99 < family.samples[0].value <= 35
    # A missing or broken file: no figure (and a warning), never an error on /hub/metrics.
    assert certificate_days_left(str(tmp_path / "missing.pem")) is None
    (tmp_path / "broken.pem").write_text("not a certificate")
    assert list(ServedCertificate(str(tmp_path / "broken.pem")).collect()) == []


def test_users_storage_is_counted_by_how_full_without_a_series_per_user(tmp_path, caplog):
    """The quota service answers over its real socket (its backend is a stand-in here; the
    molecule backup scenario reads the real btrfs quotas)."""
    import socket

    from formspawner import quotad
    from formspawner.metrics import StorageQuotas

    held = {"jupyterhub-user-ada": (1 * GB, 10 * GB), "jupyterhub-user-bob": (6 * GB, 10 * GB),
            "jupyterhub-user-cy": (19 * GB, 20 * GB), "jupyterhub-user-old": (None, None)}  # fmt: skip

    class Backend:
        def usage(self, names):
            return {name: held[name] for name in names}

    volumes = tmp_path / "volumes"
    for name in held:
        (volumes / name / "_data").mkdir(parents=True)
    (volumes / "other" / "_data").mkdir(parents=True)
    path = str(tmp_path / "quota.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    service = quotad.Service(Backend(), str(volumes), "jupyterhub-user-")
    threading.Thread(target=service.serve, args=(listener,), daemon=True).start()
    registry = CollectorRegistry()
    StorageQuotas.register(path, interval=300, registry=registry)
    deadline = time.monotonic() + 10
    while "formspawner_storage_used_bytes" not in (text := scrape(registry)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "formspawner_storage_volumes_with_quota 3.0" in text
    assert "formspawner_storage_volumes_without_quota 1.0" in text
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert float(values["formspawner_storage_committed_bytes"]) == 40 * GB
    assert float(values["formspawner_storage_used_bytes"]) == 26 * GB
    for fill, count in (("below_50", 1), ("50_to_90", 1), ("above_90", 1)):
        assert f'formspawner_storage_volumes_by_fill{{fill="{fill}"}} {count}.0' in text
    assert "jupyterhub-user-" not in text.replace("jupyterhub-user-old", ""), "no user's name as a label"
    assert "not under their storage quota yet (set at their user's next start): jupyterhub-user-old" in caplog.text
