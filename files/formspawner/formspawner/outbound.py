"""What users' servers and repository builds need to reach the internet from a campus:
the hub host's CA bundle (a campus CA, TLS inspection) and the campus's HTTP(S) proxy.

The real images carry only public CAs and no proxy setting, so without these a student's
`pip install` and a repository's requirements.txt fail behind TLS inspection. Nothing
secret is baked into an image: proxies reach builds as Docker's predefined build
arguments (kept out of the image and its history), and servers get them at start.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import PolicyError

# Where servers and builds find the bundle (a read-only bind in servers, a file in builds).
CA_PATH = "/etc/formspawner/ca-certificates.crt"
# How the common tools are told to use a CA bundle of their own: Python's ssl and
# requests, pip, curl, git, Node (extra CAs), conda.
CA_VARIABLES = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    "CONDA_SSL_VERIFY",
)
PROXY_KEYS = ("http_proxy", "https_proxy", "no_proxy")
# The bundle's name in a build's context.
CONTEXT_NAME = "formspawner-ca-certificates.crt"
_PROXY_URL_RE = re.compile(r"https?://[^\s/?#]+/?")
_NO_PROXY_RE = re.compile(r"[A-Za-z0-9.:*/\[\]_-]+(?:,[A-Za-z0-9.:*/\[\]_-]+)*")


@dataclass(frozen=True)
class Outbound:
    ca_bundle: str = ""
    proxy: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(cls, ca_bundle: str, proxy: Mapping, setting: str = "FormDockerSpawner") -> Outbound:
        if ca_bundle and not (isinstance(ca_bundle, str) and ca_bundle.startswith("/")):
            raise PolicyError(f"{setting}.ca_bundle must be an absolute path on the hub's host, not {ca_bundle!r}")
        if not isinstance(proxy, Mapping):
            raise PolicyError(f"{setting}.proxy_env must be a mapping of {', '.join(PROXY_KEYS)}")
        entries = []
        for key, value in proxy.items():
            name = str(key).lower()
            if name not in PROXY_KEYS:
                raise PolicyError(f"{setting}.proxy_env: unknown key {key!r} (allowed: {', '.join(PROXY_KEYS)})")
            if value in (None, ""):
                continue
            pattern = _NO_PROXY_RE if name == "no_proxy" else _PROXY_URL_RE
            if not isinstance(value, str) or not pattern.fullmatch(value):
                what = "a comma-separated list of hosts" if name == "no_proxy" else "an http:// or https:// URL"
                raise PolicyError(f"{setting}.proxy_env.{name} must be {what} (no spaces, path or query)")
            entries.append((name, value))
        return cls(ca_bundle=ca_bundle or "", proxy=tuple(sorted(entries)))

    def _proxy_variables(self) -> dict[str, str]:
        # Tools disagree on the case (curl reads http_proxy only in lower case): both.
        return {name: value for key, value in self.proxy for name in (key, key.upper())}

    def server_env(self) -> dict[str, str]:
        env = dict.fromkeys(CA_VARIABLES, CA_PATH) if self.ca_bundle else {}
        env.update(self._proxy_variables())
        return env

    def server_binds(self) -> dict[str, dict[str, str]]:
        return {self.ca_bundle: {"bind": CA_PATH, "mode": "ro"}} if self.ca_bundle else {}

    def build_args(self) -> dict[str, str]:
        """Docker's predefined proxy arguments: set in every RUN step, never stored."""
        return self._proxy_variables()

    def recipe_lines(self) -> list[str]:
        """Before any step that may download: the bundle in place, the tools pointed at it
        (ARG: set for the build's steps, not kept in the image; servers get it at start)."""
        if not self.ca_bundle:
            return []
        return [f"COPY {CONTEXT_NAME} {CA_PATH}"] + [f"ARG {name}={CA_PATH}" for name in CA_VARIABLES]

    def add_to_context(self, workdir: str) -> None:
        if not self.ca_bundle:
            return
        target = Path(workdir, CONTEXT_NAME)
        try:
            shutil.copyfile(self.ca_bundle, target)
        except OSError as error:
            raise RuntimeError(f"Cannot read the hub's CA bundle {self.ca_bundle}: {error.strerror}.") from None
        os.chmod(target, 0o644)  # the image's user reads it (the hub's umask may be 0077)
