"""``python -m reference_server`` / ``slabench-server``: start the reference server.

Prints ``slabench reference server ready at http://HOST:PORT`` once it accepts requests
(``--port 0`` picks a free port). SIGTERM or SIGINT drains gracefully: readiness turns 503,
new requests get 503, in-flight requests finish until ``--drain-timeout``, then open
streams are closed with an error event and ``[DONE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from reference_server.app import create_app, drain
from reference_server.cli import ConfigError, config_from_args, parser
from reference_server.connections import LimitedTCPSite
from reference_server.runtime import DeviceError
from reference_server.state import SCHEDULERS


async def _until_signalled() -> None:
    """Wait for SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    import torch  # deferred: --help must not pay for importing torch

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    app = create_app(config)
    # handler_cancellation: a client that goes away cancels its handler, which frees the
    # request's decode slot instead of generating tokens nobody will read.
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=2.0,
        handler_cancellation=True,
        keepalive_timeout=config.keepalive_timeout_s,  # aiohttp's default is about an hour
        lingering_time=2.0,  # reading the unread rest of a refused body (aiohttp: 10 s)
    )
    await runner.setup()
    site = LimitedTCPSite(runner, config.host, config.port, config.max_connections)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(
            f"error: cannot listen on {config.host}:{config.port}: {exc.strerror}", file=sys.stderr
        )
        return 2
    host, port = runner.addresses[0][:2]
    schedulers = app[SCHEDULERS]
    print(schedulers.telemetry.summary, flush=True)
    print(
        f"slabench reference server ready at http://{host}:{port} "
        f"(device={schedulers.device}, dtype={schedulers.dtype})",
        flush=True,
    )
    await _until_signalled()
    print("draining: readiness is 503, finishing in-flight requests", file=sys.stderr, flush=True)
    clean = await drain(app, config.drain_timeout_s)
    if not clean:
        print("drain deadline reached: open streams were closed with an error", file=sys.stderr)
    await runner.cleanup()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        return asyncio.run(serve(args))
    except (DeviceError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
