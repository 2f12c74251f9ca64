"""Start the emulator: TLS certificates, the HTTPS server, and ``connection.json`` once it accepts connections."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import ssl
from pathlib import Path

import uvicorn

from .app import EmulatorApp, freeze_heap
from .limits import DEFAULT_BLOCK_SECONDS, DEFAULT_DAILY_LIMIT, DEFAULT_HOURLY_LIMIT
from .state import Emulator

log = logging.getLogger("salesforce_emulator")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m include.salesforce_emulator",
                                     description="Local HTTPS emulator of the Salesforce REST and Bulk 2.0 APIs.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 = pick a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--state-dir", required=True, type=Path, help="folder for state, certificates, connection.json")
    parser.add_argument("--hourly-limit", type=int, help=f"requests per rolling hour (default {DEFAULT_HOURLY_LIMIT})")
    parser.add_argument("--daily-limit", type=int, help=f"requests per rolling 24 hours (default {DEFAULT_DAILY_LIMIT})")
    parser.add_argument("--block-seconds", type=float,
                        help=f"how long the hourly limit blocks the session (default {DEFAULT_BLOCK_SECONDS})")
    parser.add_argument("--seed-demo", action="store_true", help="load the demo data set (replaces all records)")
    parser.add_argument("--memory-only", action="store_true",
                        help="keep the org in memory only, nothing in state.sqlite3 (benchmarks; a restart starts empty)")
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def ensure_certificates(state_dir: Path) -> tuple[Path, Path, Path]:
    """CA (``ca.pem``) and a server certificate for localhost/127.0.0.1, made once and reused on restart."""
    ca_file, cert_file, key_file = state_dir / "ca.pem", state_dir / "server-cert.pem", state_dir / "server-key.pem"
    if not (ca_file.exists() and cert_file.exists() and key_file.exists()):
        import trustme

        ca = trustme.CA(organization_name="Salesforce emulator (local)")
        server_cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
        server_cert.private_key_pem.write_to_path(str(key_file))
        server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
        for extra in server_cert.cert_chain_pems[1:]:
            with open(cert_file, "ab") as handle:
                handle.write(extra.bytes())
        ca.cert_pem.write_to_path(str(ca_file))
    return ca_file, cert_file, key_file


def write_connection_json(state_dir: Path, info: dict) -> Path:
    target = state_dir / "connection.json"
    temporary = state_dir / "connection.json.tmp"
    temporary.write_text(json.dumps(info, indent=2))
    os.replace(temporary, target)  # atomic: readers never see half a file
    return target


async def serve(args: argparse.Namespace) -> None:
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "connection.json").unlink(missing_ok=True)
    ca_file, cert_file, key_file = ensure_certificates(state_dir)
    emulator = Emulator(state_dir, {"hourly_limit": args.hourly_limit, "daily_limit": args.daily_limit,
                                    "block_seconds": args.block_seconds}, memory_only=args.memory_only)
    if args.seed_demo:
        from .demo_data import seed_demo

        emulator.reset()
        counts = seed_demo(emulator)
        log.warning("Seeded demo data: %s", counts)
    freeze_heap()  # the records loaded from the state or seeded

    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    # h11, not httptools: uvicorn's httptools protocol lower-cases every response header name on the wire,
    # h11 writes the names as the app spells them (and its own framing headers as Transfer-Encoding,
    # Connection), so clients that look up "Content-Type" case-sensitively read Salesforce's spelling.
    config = uvicorn.Config(
        EmulatorApp(emulator), ssl_certfile=str(cert_file), ssl_keyfile=str(key_file), log_level=args.log_level,
        access_log=False, server_header=False, date_header=False, loop="uvloop", http="h11", lifespan="off",
        timeout_keep_alive=120, timeout_graceful_shutdown=1,  # idle TLS keep-alives would stall a stop
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the stop signal after its shutdown with the handler it found; make that
    # handler harmless so the state is flushed below instead of the process dying mid-way.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises why the server did not start
            return
        await asyncio.sleep(0.02)
    await _wait_until_accepting(args.host, port, ca_file)
    instance_host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "localhost") else args.host
    write_connection_json(state_dir, {
        "instance_url": f"https://{instance_host}:{port}",
        "session_id": emulator.session_id,
        "ca_file": str(ca_file),
    })
    log.warning("Salesforce emulator listening on https://%s:%s (state in %s)", instance_host, port, state_dir)
    try:
        await task
    finally:
        emulator.db.close()


async def _wait_until_accepting(host: str, port: int, ca_file: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))
    for _ in range(200):
        try:
            _reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname="localhost")
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.02)
    raise RuntimeError(f"the emulator did not accept TLS connections on {host}:{port}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        import uvloop

        uvloop.run(serve(args))
    except ImportError:  # pragma: no cover
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
