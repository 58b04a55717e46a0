"""``ragcun models list|show|register|remove``: model versions."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, fields, json_option, pass_app, table
from ragcun.collections import list_models, register_model, remove_model, show_model


@cli.group()
def models() -> None:
    """Model versions: list, inspect, register and remove."""


@models.command("list")
@json_option
@pass_app
def models_list(app: AppContext, as_json) -> None:
    """Registered model versions and the collections bound to them."""
    with app.workspace() as ws:
        rows = [m.to_dict() for m in list_models(ws)]
    emit(
        rows,
        as_json,
        lambda r: table(
            [
                {
                    **m,
                    "fingerprint": m["fingerprint"][:12],
                    "collections": ", ".join(f"{c['physical_name']} ({c['status']})" for c in m["collections"]),
                }
                for m in r
            ],
            ["fingerprint", "head", "dim", "base_model", "collections"],
        ),
    )


@models.command("show")
@click.argument("version")
@json_option
@pass_app
def models_show(app: AppContext, version, as_json) -> None:
    """One model version (by fingerprint prefix)."""
    with app.workspace() as ws:
        data = show_model(ws, version).to_dict()
    emit(data, as_json, fields)


@models.command("register")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@json_option
@pass_app
def models_register(app: AppContext, directory, as_json) -> None:
    """Register a model directory as a version (a copy is kept in the ragcun home)."""
    with app.workspace() as ws:
        data = register_model(ws, directory).to_dict()
    emit(data, as_json, lambda d: click.echo(f"Registered model {d['fingerprint']}"))


@models.command("remove")
@click.argument("version")
@json_option
@pass_app
def models_remove(app: AppContext, version, as_json) -> None:
    """Forget a model version that no collection uses."""
    with app.workspace() as ws:
        data = remove_model(ws, version).to_dict()
    emit(data, as_json, lambda d: click.echo(f"Removed model {d['fingerprint']}"))
