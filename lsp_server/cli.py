"""`blockfill serve`: run the language server over stdio (default) or TCP.

blockfill serve                              stdio, the default model (blockfill-coder)
blockfill serve --model DIR --set max_steps=8
blockfill serve --tcp 127.0.0.1:2087         TCP, loopback only unless --allow-remote
"""

import argparse
import ipaddress
import logging
import socket
import sys

from engine.config import parse_assignments
from engine.errors import BlockfillError
from lsp_server.server import create_server
from lsp_server.settings import Settings, apply_settings


def _tcp_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blockfill serve", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tcp", type=_tcp_address, metavar="HOST:PORT", help="listen on TCP instead of stdio")
    parser.add_argument("--allow-remote", action="store_true", help="let --tcp listen on a non-loopback address")
    parser.add_argument("--model", help="a name from `blockfill models list`, a checkpoint directory or a hub id")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="engine or server setting")
    parser.add_argument("--log-level", default="WARNING", help="stderr logging level (default WARNING)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point for `blockfill serve ARGS` (argv excludes the word `serve`)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="blockfill: %(levelname)s %(message)s")
    try:
        overrides = parse_assignments(args.set or [])
    except BlockfillError as err:
        print(f"blockfill serve: error: {err}", file=sys.stderr)
        return 2
    if args.model:
        overrides["model"] = args.model
    settings, problems = apply_settings(Settings(), overrides)
    if problems:
        print("blockfill serve: error: " + "; ".join(problems), file=sys.stderr)
        return 2
    server = create_server(settings)
    if args.tcp is None:
        server.start_io()
        return 0
    host, port = args.tcp
    if not args.allow_remote and not _is_loopback(host):
        print(f"blockfill serve: error: {host} is not a loopback address; add --allow-remote", file=sys.stderr)
        return 2
    server.start_tcp(host, port)
    return 0


def blockfill(argv: list[str] | None = None) -> int:
    """The `blockfill` console script: `serve` starts the language server; every other command is the engine's.

    It lives here because the server depends on the engine and never the other way round.
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return main(argv[1:])
    from engine.cli import main as engine_main

    return engine_main(argv)
