"""Helpers of the server tests: a small generated benchmark, result masks, zips, and real server processes.

Every server started here binds to 127.0.0.1 only; every wait is bounded in count and time.
"""
from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from vosbench.io.masks import read_mask, write_mask
from vosbench.io.synthetic import SyntheticParams, generate_dataset

SMALL = SyntheticParams(n_sequences=3, n_frames=6, height=48, width=64, max_objects=3)


def make_gt(root: Path, seed: int = 5) -> Path:
    return generate_dataset(root, seed=seed, params=SMALL)


def val_sequences(gt: Path) -> list[str]:
    return (gt / "ImageSets" / "2017" / "val.txt").read_text().split()


def make_results(gt: Path, out: Path, shift: int = 2) -> Path:
    """The ground truth's masks moved `shift` pixels right (void cleared): imperfect, deterministic results."""
    for seq in val_sequences(gt):
        for path in sorted((gt / "Annotations" / "480p" / seq).glob("*.png")):
            mask = read_mask(path)
            mask[mask == 255] = 0
            write_mask(out / seq / path.name, np.roll(mask, shift, axis=1))
    return out


def zip_bytes(entries: dict[str, bytes], *, modes: dict[str, int] | None = None,
              compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compression
            if modes and name in modes:
                info.external_attr = modes[name] << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def results_entries(results: Path) -> dict[str, bytes]:
    return {f"{p.parent.name}/{p.name}": p.read_bytes() for p in sorted(results.glob("*/*.png"))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll `predicate` at most timeout/interval times; return its first truthy value or raise."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout} s")


class Process:
    """A `vosbench serve ...` child process with its output in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.log_path = log
        self._log = open(log, "ab")
        full_env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", **(env or {}))
        self.proc = subprocess.Popen([sys.executable, "-m", "vosbench", *args], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=full_env)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def serve_args(gt: Path, data_dir: Path, *extra: str) -> list[str]:
    return ["serve", "--gt", str(gt), "--data-dir", str(data_dir), "--daily-limit", "-1", *extra]


def start_server(gt: Path, data_dir: Path, port: int, log: Path, *extra: str,
                 env: dict[str, str] | None = None, own_worker: bool = False) -> Process:
    """`vosbench serve` on 127.0.0.1:port; own_worker: with the worker process it starts itself
    (default: none, the test starts workers with `start_worker`)."""
    import httpx

    flags = [] if own_worker else ["--no-worker"]
    server = Process(serve_args(gt, data_dir, "--host", "127.0.0.1", "--port", str(port), *flags, *extra),
                     log, env)

    def up():
        if not server.alive():
            raise RuntimeError(f"the server exited:\n{server.log()}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/healthcheck", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, timeout=60, interval=0.25, what="server start")
    return server


def start_worker(gt: Path, data_dir: Path, log: Path, *extra: str, env: dict[str, str] | None = None) -> Process:
    args = ["serve", "worker", "--gt", str(gt), "--data-dir", str(data_dir), *extra]
    return Process(args, log, env)


def clear(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


IN_CI = os.environ.get("CI", "").lower() in ("1", "true") or os.environ.get("VOSBENCH_REQUIRE_SHARED") == "1"


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parent.parent.name)
    return candidates[-1].parent if candidates else None


class PostgresServer:
    """A throw-away PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only.

    Run as root (CI, containers), the cluster runs as the `postgres` system user, since
    PostgreSQL refuses to run as root.
    """

    def __init__(self):
        import tempfile

        self.bin = _pg_bin()
        if self.bin is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found; "
                               "apt-get install -y postgresql")
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="vosbench-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and no 'postgres' user to run PostgreSQL as") from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        self.url = f"postgresql+psycopg://vosbench@127.0.0.1:{self.port}/vosbench"

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def start(self) -> "PostgresServer":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "vosbench", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                  "-w", "-t", "60", "start")
        import psycopg

        with psycopg.connect(f"postgresql://vosbench@127.0.0.1:{self.port}/postgres", autocommit=True,
                             connect_timeout=10) as connection:
            connection.execute("CREATE DATABASE vosbench")
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
