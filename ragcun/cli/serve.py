"""``ragcun serve``: the HTTP API over the home (the CLI stays the admin tool)."""

from __future__ import annotations

import ipaddress
import os

import click

from ragcun.cli.main import AppContext, cli, pass_app

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port to listen on (0: any free port).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes; more than one needs QDRANT_URL (the embedded store allows one process).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Listen on a non-loopback --host without RAGCUN_API_KEY (anyone who reaches the port can read and write).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Chunks embedded and upserted together by POST /collections/NAME/documents.",
)
@click.option("--access-log", is_flag=True, help="Log one line per request (never the Authorization header).")
@pass_app
def serve(app: AppContext, host, port, workers, insecure, batch_size, access_log) -> None:
    """Serve search, ask, embed and document writes over HTTP; the API is documented at /docs.

    With RAGCUN_API_KEY set, every route but /healthz and /readyz needs 'Authorization: Bearer KEY'.
    """
    import uvicorn

    settings = app.settings
    if settings.api_key is None and not is_loopback(host) and not insecure:
        raise click.UsageError(
            f"refusing to listen on {host} without RAGCUN_API_KEY: set it, or pass --insecure to serve anyone "
            "who can reach the port"
        )
    if workers > 1 and settings.engine == "edge":
        raise click.UsageError(
            "the embedded store allows one process: use --workers 1, or run a Qdrant server and set QDRANT_URL"
        )
    log_level = "debug" if app.debug else "info"
    if workers > 1:
        # Each worker process opens its own Service from the environment.
        os.environ["RAGCUN_HOME"] = str(settings.home)
        os.environ["RAGCUN_SERVE_INGEST_BATCH"] = str(batch_size)
        uvicorn.run(
            "ragcun.serve.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
        )
        return
    from ragcun.serve import Service, create_app

    # Opened here, so a locked or broken home is a one-line error before the server starts.
    service = Service(settings, ingest_batch_size=batch_size)
    uvicorn.run(create_app(service), host=host, port=port, log_level=log_level, access_log=access_log)
