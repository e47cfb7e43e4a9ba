"""``lulc-edge serve``: the HTTP service of :mod:`lulc_edge.serve` on uvicorn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from ..engine import Engine
from ..errors import LulcEdgeError
from .console import fail
from .options import SERVED_ENGINE, SIZE, EngineArgs, Group, use


@dataclass(frozen=True)
class ListenArgs:
    """Where the service listens, and who may call it."""

    host: str
    port: int
    token: str | None
    insecure: bool
    cors: str | None


@dataclass(frozen=True)
class ServiceArgs:
    """The service's folders and limits (lulc_edge.serve.ServeOptions' fields)."""

    data_root: str | None
    jobs_dir: str
    max_upload_mb: float
    body_timeout: float
    max_waiting: int | None
    queue: int
    size: int


LISTEN = Group("listen", ListenArgs, (
    click.option("--host", default="127.0.0.1", show_default=True,
                 help="Address to listen on; anything but loopback needs --token (or "
                      "--insecure)."),
    click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
                 envvar="PORT", show_envvar=True, help="Port to listen on (also from $PORT)."),
    click.option("--token", envvar="LULC_EDGE_TOKEN", default=None,
                 help="Require 'Authorization: Bearer TOKEN' (also from LULC_EDGE_TOKEN)."),
    click.option("--insecure", is_flag=True,
                 help="Allow a non-loopback --host without --token."),
    click.option("--cors", default=None, metavar="ORIGIN",
                 help="Allow this browser origin (default: no CORS headers)."),
))
SERVICE = Group("service", ServiceArgs, (
    click.option("--data-root", type=click.Path(file_okay=False, exists=True), default=None,
                 help="Folder whose scenes POST /jobs {\"path\": ...} may name (nothing "
                      "outside it)."),
    click.option("--jobs-dir", type=click.Path(file_okay=False), default="lulc-edge-jobs",
                 show_default=True, help="Where jobs keep their state, maps and pictures."),
    click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=500,
                 show_default=True, help="Larger files get 413 (the file, not the multipart "
                                         "envelope around it)."),
    click.option("--body-timeout", type=click.FloatRange(min=0, min_open=True), default=30,
                 show_default=True, help="Seconds a request body may send nothing; then 408."),
    click.option("--max-waiting", type=click.IntRange(1), default=None,
                 help="/predict uploads received and not yet answered (waiting or running) at "
                      "most; more get 429 (default: available memory / 64 MiB, at least 8)."),
    click.option("--queue", "queue", type=click.IntRange(1), default=8, show_default=True,
                 help="Jobs waiting at most; more get 429."),
    SIZE,
))


@click.command()
@use(LISTEN, SERVED_ENGINE, SERVICE)
def serve(listen: ListenArgs, engine: EngineArgs, service: ServiceArgs) -> None:
    """Serve the model over HTTP: the original app's /health and /predict, jobs, a web page.

    \b
    curl -F file=@scene.tif http://127.0.0.1:5000/predict
    curl -F file=@scene.tif http://127.0.0.1:5000/jobs        # then GET /jobs/ID
    Needs the serve extra: pip install 'lulc-edge[serve]'.
    """
    try:
        import uvicorn

        from ..serve import ServeOptions, create_app, is_loopback
    except ImportError as exc:
        fail(f"serve needs the serve extra ({exc.name} missing): pip install 'lulc-edge[serve]'")
    host = listen.host
    if not is_loopback(host) and not listen.token and not listen.insecure:
        fail(f"--host {host} is not a loopback address: give --token (clients send "
             "'Authorization: Bearer TOKEN'), or --insecure to serve without one")
    try:
        model = Engine(engine.model, engine.engine_options())
        app = create_app(model, ServeOptions(
            **{**vars(service), "jobs_dir": Path(service.jobs_dir),
               "data_root": Path(service.data_root) if service.data_root else None},
            token=listen.token, cors=listen.cors))
    except (LulcEdgeError, OSError) as exc:
        fail(str(exc))
    click.echo(f"lulc-edge: serving {model.contract.path} ({model.device} {model.precision}) "
               f"on http://{host}:{listen.port}/", err=True)
    uvicorn.run(app, host=host, port=listen.port, log_level="warning")
