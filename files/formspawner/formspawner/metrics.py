"""The Docker host's figures for Prometheus, served with JupyterHub's own /hub/metrics.

JupyterHub reports users, spawns and requests; a single Docker host also needs to know
its disk: what images, users' volumes and the build cache take, what is left, and how
many containers each user has. `DockerFigures` is a Prometheus collector: a scrape reads
the last figures and, when they are older than `interval`, asks a background thread for
new ones, so a scrape never waits for Docker (`docker system df` walks every volume).

    from formspawner.metrics import DockerFigures
    DockerFigures.register(interval=300)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from .cache import disk_usage, docker_root, own_sizes
from .labels import OPTIONS_LABEL, USER_LABEL

log = logging.getLogger(__name__)

GAUGES = {
    "disk_free_bytes": "Bytes free on the file system where Docker keeps its data",
    "disk_size_bytes": "Size of the file system where Docker keeps its data",
    "images_bytes": "Bytes all images take (their layers, counted once)",
    "volumes_bytes": "Bytes all volumes take (users' work volumes among them)",
    "build_cache_bytes": "Bytes of Docker's build cache",
    "repo_images": "Images built for repository launches",
    "repo_images_bytes": "Bytes the repository images take beyond their base images",
    "user_containers_per_user_max": "Most containers any one user has",
    "figures_age_seconds": "Seconds since these figures were read from Docker",
}


def read_figures(client) -> dict:
    """The figures, from the engine's `system df`, container list and data directory."""
    df = client.df()
    figures = {
        "images_bytes": df.get("LayersSize") or 0,
        "volumes_bytes": sum(max(0, (v.get("UsageData") or {}).get("Size", 0)) for v in df.get("Volumes") or []),
        "build_cache_bytes": sum(max(0, b.get("Size", 0)) for b in df.get("BuildCache") or []),
    }
    built = own_sizes(df.get("Images"))
    figures["repo_images"] = len(built)
    figures["repo_images_bytes"] = sum(built.values())
    containers = client.containers(all=True, filters={"label": OPTIONS_LABEL})
    states = Counter("running" if c.get("State") == "running" else "stopped" for c in containers)
    figures["user_containers"] = {state: states.get(state, 0) for state in ("running", "stopped")}
    per_user = Counter((c.get("Labels") or {}).get(USER_LABEL) for c in containers)
    per_user.pop(None, None)
    figures["user_containers_per_user_max"] = max(per_user.values(), default=0)
    usage = disk_usage(docker_root(client))
    if usage:  # None: the engine is on another machine
        figures["disk_free_bytes"], figures["disk_size_bytes"] = usage
    return figures


class Refreshed:
    """A Prometheus collector whose figures (`read()`) are read in the background: a scrape
    shows the last ones and, when they are older than `interval`, starts a new read.
    `gauges`: name -> help of the plain gauges; `labelled`: one gauge with a label, as
    (name, help, label), whose figure is a mapping of label values to numbers."""

    name = "figures"
    prefix = "formspawner_"
    gauges: dict[str, str] = {}
    labelled: tuple[str, str, str] = ("", "", "")

    def __init__(self, interval: float = 300):
        self.interval = interval
        self._lock = threading.Lock()
        self._figures: dict | None = None
        self._read_at = 0.0
        self._reading = False

    @classmethod
    def register(cls, *args, registry=REGISTRY, **kwargs):
        collector = cls(*args, **kwargs)
        registry.register(collector)
        return collector

    def read(self) -> dict:
        raise NotImplementedError

    def describe(self):
        # Names only: registering must not start a read (the config is also loaded by
        # `jupyterhub upgrade-db` and by the role's syntax check).
        for name, text in self.gauges.items():
            yield GaugeMetricFamily(self.prefix + name, text)
        name, text, label = self.labelled
        yield GaugeMetricFamily(self.prefix + name, text, labels=[label])

    def collect(self):
        self.refresh_if_old()
        with self._lock:
            figures, read_at = self._figures, self._read_at
        if figures is None:
            return
        figures = {**figures, "figures_age_seconds": time.monotonic() - read_at}
        for name, text in self.gauges.items():
            if name in figures:
                yield GaugeMetricFamily(self.prefix + name, text, value=figures[name])
        name, text, label = self.labelled
        family = GaugeMetricFamily(self.prefix + name, text, labels=[label])
        for value, count in figures[name].items():
            family.add_metric([value], count)
        yield family

    def refresh_if_old(self) -> None:
        with self._lock:
            fresh = self._figures is not None and time.monotonic() - self._read_at < self.interval
            if fresh or self._reading:
                return
            self._reading = True
        threading.Thread(target=self._read, name=f"formspawner-{self.name}", daemon=True).start()

    def _read(self) -> None:
        figures = None
        try:
            figures = self.read()
        except Exception as error:  # Docker or the service down: keep the last figures, their age grows
            log.warning("Could not read the %s: %s", self.name, error)
        finally:
            with self._lock:
                if figures is not None:
                    self._figures, self._read_at = figures, time.monotonic()
                self._reading = False


class DockerFigures(Refreshed):
    """The Docker host's figures (`read_figures`), refreshed in the background."""

    prefix = "formspawner_docker_"
    name = "Docker host's figures"
    gauges = GAUGES
    labelled = ("user_containers", "Users' containers by state", "state")

    def __init__(self, interval: float = 300, client_factory: Callable | None = None):
        super().__init__(interval)
        self._client_factory = client_factory or _docker_client

    def read(self) -> dict:
        return read_figures(self._client_factory())


STORAGE_GAUGES = {
    "volumes_with_quota": "Users' volumes under a storage quota",
    "volumes_without_quota": "Users' volumes not under one yet (set at their next start; the hub's log names them)",
    "committed_bytes": "The quotas of users' volumes added up (compare with formspawner_docker_disk_size_bytes)",
    "used_bytes": "Bytes users' volumes under a quota hold",
    "figures_age_seconds": "Seconds since these figures were read from the quota service",
}


class StorageQuotas(Refreshed):
    """Users' storage as the quota service (formspawner.quotad) reads it from the filesystem's
    quotas, without walking any files: totals and counts by how full, not a series per user."""

    prefix = "formspawner_storage_"
    name = "users' storage quotas"
    gauges = STORAGE_GAUGES
    labelled = ("volumes_by_fill", "Users' volumes by how full", "fill")

    def __init__(self, socket_path: str, interval: float = 300):
        super().__init__(interval)
        self.socket_path = socket_path
        self._told: set[str] = set()

    def read(self) -> dict:
        from .quota import USAGE_TIMEOUT, ask_blocking, summary

        volumes = ask_blocking(self.socket_path, {"op": "usage"}, USAGE_TIMEOUT)["volumes"]
        figures = summary({name: tuple(value) for name, value in volumes.items()})
        new = set(figures["without_quota"]) - self._told
        if new:
            log.warning("Volumes not under their storage quota yet (set at their user's next start): %s",
                        ", ".join(sorted(new)))  # fmt: skip
            self._told |= new
        return figures


def _docker_client():
    import docker

    return docker.APIClient(version="auto", timeout=600)


class ServedCertificate:
    """Days until the hub's TLS certificate (the file the proxy or nginx serves) expires,
    read from the file at each scrape: a renewal that failed shows as days running out."""

    name = "formspawner_tls_certificate_expiry_days"
    text = "Days until the certificate the hub serves expires (negative: expired)"

    def __init__(self, path: str):
        self.path = path

    @classmethod
    def register(cls, path: str, registry=REGISTRY) -> ServedCertificate:
        collector = cls(path)
        registry.register(collector)
        return collector

    def describe(self):
        yield GaugeMetricFamily(self.name, self.text)

    def collect(self):
        days = certificate_days_left(self.path)
        if days is not None:
            yield GaugeMetricFamily(self.name, self.text, value=days)


def certificate_days_left(path: str, now: float | None = None) -> float | None:
    """Days from `now` until the first certificate in the PEM file `path` expires; None
    (logged) when the file cannot be read or parsed."""
    from cryptography import x509

    try:
        with open(path, "rb") as stream:
            certificate = x509.load_pem_x509_certificate(stream.read())
    except (OSError, ValueError) as error:
        log.warning("Could not read the served certificate %s: %s", path, error)
        return None
    now = time.time() if now is None else now
    return (certificate.not_valid_after_utc.timestamp() - now) / 86400
