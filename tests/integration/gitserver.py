"""A real Git server for the tests: git's own smart HTTP (`git http-backend`) over TLS on loopback.

The hub fetches from it exactly as it would from GitHub: https, protocol v2, ls-remote,
shallow fetch of one commit. Its certificate is made here and handed to the hub through
GIT_SSL_CAINFO, the way a campus CA would be.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import ssl
import subprocess
import tempfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


def git(*args, cwd=None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


class _Handler(BaseHTTPRequestHandler):
    root: str = ""
    requests_seen: list = []

    def log_message(self, *args):  # quiet: the test output is the hub's log
        pass

    def _backend(self):
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.requests_seen.append((self.command, path))
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            **GIT_ENV,
        }
        output = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = output.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.split(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _backend
    do_POST = _backend

    def setup(self):
        # The TLS handshake in this connection's own thread (not in the accepting one, where a
        # slow client would hold up every other), with a bound on a client that stalls.
        self.request.settimeout(60)
        self.request.do_handshake()
        super().setup()


class _TLSServer(ThreadingHTTPServer):
    def __init__(self, address, handler, context: ssl.SSLContext):
        super().__init__(address, handler)
        self.context = context

    def get_request(self):
        connection, address = self.socket.accept()
        return self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False), address


class GitServer:
    """Bare repositories under `root`, served at https://localhost:PORT/NAME.git."""

    def __init__(self, workdir: Path, cert: Path | None = None, key: Path | None = None, port: int = 0):
        self.root = workdir / "repos"
        self.root.mkdir(parents=True, exist_ok=True)
        if cert and key:
            self.cert = cert
        else:
            self.cert, key = workdir / "cert.pem", workdir / "key.pem"
            make_certificate(self.cert, key)
        handler = type("Handler", (_Handler,), {"root": str(self.root), "requests_seen": []})
        self.requests_seen = handler.requests_seen
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server = _TLSServer(("127.0.0.1", port), handler, context)
        self.port = self.server.server_address[1]
        self.host = f"localhost:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def url(self, name: str) -> str:
        return f"https://{self.host}/{name}.git"

    def commit(self, name: str, files: dict[str, str | bytes], executable=(), message="change") -> str:
        """Commit `files` on `main` of repository `name` (created on first use); the new commit's SHA."""
        bare = self.root / f"{name}.git"
        if not bare.exists():
            git("init", "-q", "--bare", "-b", "main", str(bare))
            # Short commit ids are resolved with a partial fetch, as GitHub allows.
            git("-C", str(bare), "config", "uploadpack.allowFilter", "true")
        with tempfile.TemporaryDirectory() as work:
            git("clone", "-q", str(bare), work)
            git("-C", work, "checkout", "-q", "-B", "main")
            for path, content in files.items():
                target = Path(work, path)
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, bytes):
                    target.write_bytes(content)
                else:
                    target.write_text(content)
                if path in executable:
                    target.chmod(0o755)
            git("-C", work, "add", "-A")
            git("-C", work, "commit", "-q", "--allow-empty", "-m", message)
            git("-C", work, "push", "-q", "origin", "main")
            return git("-C", work, "rev-parse", "HEAD")

    def unreachable_commit(self, name: str, files: dict[str, str]) -> str:
        """A commit in the repository's objects that no branch or tag reaches, as a fork's
        commit is in the parent's on GitHub (one object store for the whole fork network):
        made on a branch that is then deleted."""
        bare = self.root / f"{name}.git"
        main = git("-C", str(bare), "rev-parse", "main")
        commit = self.commit(name, files, message="from a fork")
        git("-C", str(bare), "update-ref", "refs/heads/main", main)
        return commit

    def tag(self, name: str, tag: str, commit: str) -> None:
        git("-C", str(self.root / f"{name}.git"), "tag", tag, commit)


def make_certificate(cert: Path, key: Path) -> None:
    """A self-signed certificate for localhost (openssl, as any admin would make one)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip


def make_wheel(package: str, value: str) -> tuple[str, bytes]:
    """A pure-Python wheel holding `package.VALUE = value`: installable by pip with no index."""
    dist = f"{package}-1.0.dist-info"
    files = {
        f"{package}/__init__.py": f"VALUE = {value!r}\n".encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return f"{package}-1.0-py3-none-any.whl", buffer.getvalue()
