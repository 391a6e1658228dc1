"""``python -m sentinai.twin``: serve simulated OP Stack chains (RPC, Kubernetes API, control) on one port."""

from __future__ import annotations

import argparse
import gc
import logging
import secrets
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from sentinai.common import jsonlog, subjects
from sentinai.common.serve import run
from sentinai.twin import files
from sentinai.twin.app import build_app
from sentinai.twin.model import DEFAULT_EPOCH_S, ChainConfig
from sentinai.twin.runtime import Twin

log = logging.getLogger("sentinai.twin")
# Every request allocates thousands of short-lived objects; with the default gen-0 threshold (700)
# the cyclic collector kept rescanning the chains' long-lived state (blocks, log rings). Collections
# run about 70 times less often, and what exists at startup is frozen out of them.
GC_THRESHOLDS = (50_000, 20, 20)


def _chain_list(text: str) -> list[str]:
    chains = [c.strip() for c in text.split(",") if c.strip()]
    if not chains:
        raise argparse.ArgumentTypeError("at least one chain id")
    try:
        # Chain ids become namespaces, URL segments and NATS subject tokens.
        return [subjects.token(c) for c in chains]
    except subjects.InvalidTokenError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sentinai.twin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (written to the files)")
    parser.add_argument("--chains", type=_chain_list, default=["twin"], help="comma-separated chain ids")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--block-time", type=int, default=2, choices=range(1, 13), metavar="SECONDS")
    parser.add_argument("--speed", type=float, default=1.0, help="sim seconds per wall-clock second")
    parser.add_argument("--cycle-s", type=float, default=86_400.0, help="period of the traffic cycle")
    parser.add_argument("--manual", action="store_true", help="no wall clock: advance only via /step")
    parser.add_argument("--kubeconfig-out", type=Path, help="write a kubeconfig for the twin's API here")
    parser.add_argument("--chains-out", type=Path, help="write the collector's chain config here")
    parser.add_argument("--token", default=None, help="bearer token for the Kubernetes API (default: random)")
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    if args.chains_out is not None and args.kubeconfig_out is None:
        parser.error("--chains-out needs --kubeconfig-out (each chain entry names the kubeconfig)")
    return args


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket for the server (port 0: a free one)."""
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose protocol says
    # TCP, and with Nagle on, a keep-alive answer's body waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(256)
    return sock


def main(argv: Sequence[str] | None = None) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    args = parse_args(argv)
    jsonlog.setup("twin")
    # A manual run is reproducible to the log line; a clocked run keeps sim time near wall time.
    epoch = DEFAULT_EPOCH_S if args.manual else float(int(time.time()))
    configs = [
        ChainConfig(
            chain=c, seed=args.seed, block_time_s=args.block_time, epoch_s=epoch, cycle_s=args.cycle_s
        )
        for c in args.chains
    ]
    twin = Twin(configs, token=args.token or secrets.token_urlsafe(24), speed=args.speed)
    app = build_app(twin, manual=args.manual)

    # Bind before writing the files: whoever reads them can connect at once (the backlog queues).
    sock = listening_socket(args.host, args.port)
    port = sock.getsockname()[1]
    base_url = f"http://{args.host}:{port}"
    if args.kubeconfig_out is not None:
        text = files.kubeconfig(server=base_url, token=twin.token, chains=args.chains)
        files.write_atomic(args.kubeconfig_out, text, mode=0o600)
    if args.chains_out is not None:
        text = files.chains_yaml(base_url=base_url, configs=configs, kubeconfig_path=args.kubeconfig_out)
        files.write_atomic(args.chains_out, text)
    log.info("twin serving", extra={"url": base_url, "chains": args.chains, "manual": args.manual})

    gc.collect()
    gc.freeze()
    server = uvicorn.Server(
        uvicorn.Config(app, http="httptools", log_level="warning", access_log=False, lifespan="on")
    )
    run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
