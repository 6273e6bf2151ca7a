from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.server import ServerProcess

PG_BASE = os.environ.get("SEALBOX_TEST_POSTGRES", "postgresql+psycopg://root@127.0.0.1:5432/test")


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_BASE.replace("+psycopg", ""), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for this test, dropped afterwards (each server owns
    its data directory and root key, so two servers must not share a schema).

    Skipped only when no PostgreSQL is reachable; CI sets SEALBOX_REQUIRE_POSTGRES=1
    so that an unreachable server fails instead of skipping.
    """
    if not postgres_available():
        if os.environ.get("SEALBOX_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but not reachable at {PG_BASE}")
        pytest.skip("no PostgreSQL reachable")
    schema = f"sbx_{uuid.uuid4().hex[:12]}"
    plain = PG_BASE.replace("+psycopg", "")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One shared server (2 workers, SQLite) for tests that don't restart it."""
    proc = ServerProcess(tmp_path_factory.mktemp("shared") / "data").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def kms(server: ServerProcess) -> Any:
    return server.client("kms")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start private servers (restarts, clock shifts, other databases)."""
    started: list[ServerProcess] = []

    def make(**kwargs: Any) -> ServerProcess:
        name = kwargs.pop("name", f"data{len(started)}")
        proc = ServerProcess(tmp_path / name, **kwargs)
        started.append(proc)
        return proc.start()

    yield make
    for proc in started:
        proc.stop()
