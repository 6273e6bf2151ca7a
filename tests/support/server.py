"""Run a real `sealbox serve` process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY_ID = "AKIASEALBOXTEST00001"
SECRET_ACCESS_KEY = "sealbox-test-secret-key-0000000000000001"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A sealbox server on a free loopback port with its own data directory."""

    def __init__(
        self,
        data_dir: Path,
        *,
        workers: int = 2,
        database: str | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        credentials: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.database = database
        self.extra_env = dict(env or {})
        self.args = list(args or [])
        self.credentials = credentials
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def scheme(self) -> str:
        return "https" if "--tls-self-signed" in self.args else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
        if self.credentials:
            env["SEALBOX_ROOT_ACCESS_KEY_ID"] = ACCESS_KEY_ID
            env["SEALBOX_ROOT_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
        env.update(self.extra_env)
        cmd = [
            sys.executable, "-m", "sealbox", "serve",
            "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            "--workers", str(self.workers),
            "--log-level", "warning",
            *self.args,
        ]  # fmt: skip
        if self.database:
            cmd += ["--database", self.database]
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                ctx: Any = None
                if self.scheme == "https":
                    ctx = ssl.create_default_context(cafile=self.data_dir / "tls-cert.pem")
                with urllib.request.urlopen(  # noqa: S310 - loopback URL we built
                    f"{self.url}/_sealbox/health", timeout=1, context=ctx
                ) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def restart(self, **changes: Any) -> ServerProcess:
        self.stop()
        for name, value in changes.items():
            setattr(self, name, value)
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def client(
        self,
        service: str = "kms",
        region: str = REGION,
        access_key_id: str = ACCESS_KEY_ID,
        secret_access_key: str = SECRET_ACCESS_KEY,
        **config: Any,
    ) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            verify=str(self.data_dir / "tls-cert.pem") if self.scheme == "https" else None,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
        )
