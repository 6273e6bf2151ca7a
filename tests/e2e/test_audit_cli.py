"""`sealbox audit verify|tail` against a real server's data directory."""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from tests.support.server import ServerProcess

ServerFactory = Callable[..., ServerProcess]


def sealbox(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealbox", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}


def some_calls(srv: ServerProcess) -> None:
    kms = srv.client()
    key_id = kms.create_key(Description="audit cli")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    kms.decrypt(CiphertextBlob=blob)
    kms.describe_key(KeyId=key_id)
    kms.list_keys()


def test_verify_passes_then_names_a_tampered_record(make_server: ServerFactory) -> None:
    srv = make_server()
    some_calls(srv)
    srv.stop()
    data_dir = str(srv.data_dir)

    ok = sealbox("audit", "verify", "--data-dir", data_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "intact" in ok.stdout
    ok_json = json.loads(
        sealbox("audit", "verify", "--data-dir", data_dir, "--output", "json").stdout
    )
    assert ok_json["ok"] is True
    assert ok_json["records_checked"] == 5

    db = sqlite3.connect(srv.data_dir / "sealbox.db")
    seq, event_id = db.execute(
        "SELECT seq, event_id FROM audit_events WHERE event_name = 'Encrypt'"
    ).fetchone()
    with db:
        db.execute(
            "UPDATE audit_events SET record = replace(record, 'Encrypt', 'Decrypt') WHERE seq = ?",
            (seq,),
        )
    db.close()

    broken = sealbox("audit", "verify", "--data-dir", data_dir)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"seq {seq}" in broken.stdout
    assert event_id in broken.stdout
    assert "record changed" in broken.stdout
    report = json.loads(
        sealbox("audit", "verify", "--data-dir", data_dir, "--output", "json").stdout
    )
    assert report["ok"] is False
    assert report["first_break"]["seq"] == seq
    assert report["first_break"]["event_id"] == event_id

    tail = sealbox("audit", "tail", "-n", "3", "--output", "json", "--data-dir", data_dir)
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert [r["eventName"] for r in records] == ["Decrypt", "DescribeKey", "ListKeys"]

    table = sealbox("audit", "tail", "-n", "2", "--data-dir", data_dir)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == [
        "EventTime", "AccountId", "EventSource", "EventName", "PrincipalArn", "ErrorCode"
    ]  # fmt: skip
    assert len(rows) == 2
    assert "kms.amazonaws.com" in rows[0] and "ListKeys" in rows[1]


def _lines(stream: IO[str]) -> tuple[queue.Queue[str], threading.Thread]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            out.put(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return out, thread


def _next_event(lines: queue.Queue[str], name: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            record: dict[str, object] = json.loads(lines.get(timeout=left))
        except queue.Empty:
            break
        if record["eventName"] == name:
            return record
    raise AssertionError(f"no {name} event within {timeout} s")


def test_tail_follow_prints_events_as_they_commit(make_server: ServerFactory) -> None:
    srv = make_server()
    kms = srv.client()
    kms.list_keys()
    cmd = [sys.executable, "-m", "sealbox", "audit", "tail", "--follow", "-n", "1"]
    cmd += ["--output", "json", "--data-dir", str(srv.data_dir)]
    with subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            lines, pump = _lines(proc.stdout)
            _next_event(lines, "ListKeys", timeout=30)  # the newest event: tail has started
            kms.list_aliases()
            record = _next_event(lines, "ListAliases", timeout=15)
            assert record["eventSource"] == "kms.amazonaws.com"
            proc.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly
            assert proc.wait(timeout=10) == 0
            pump.join(timeout=5)
            assert "Traceback" not in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
    srv.stop()


def test_verify_reads_a_live_server_and_a_missing_data_dir_is_an_error(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    srv = make_server()
    some_calls(srv)
    live = sealbox("audit", "verify", "--data-dir", str(srv.data_dir))
    assert live.returncode == 0, live.stdout + live.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = sealbox("audit", "verify", "--data-dir", str(empty))
    assert missing.returncode != 0
    assert "no Sealbox database" in missing.stderr
    assert not (empty / "sealbox.db").exists()
