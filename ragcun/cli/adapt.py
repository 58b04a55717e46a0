"""``ragcun adapt``: a collection's own model version, fitted with no labels, activated if the gate passes."""

from __future__ import annotations

import click

from ragcun.cli.main import AppContext, cli, emit, json_option, pass_app


def render_adapt(d: dict) -> None:
    """One paragraph: the candidate, the gate's verdict and figures, what happened, the time taken."""
    verdict = "passed" if d["passed"] else "refused"
    click.echo(
        f"{d['collection']!r}: fitted model {d['candidate'][:12]} on {d['chunks']} chunks and {d['spans']} "
        f"spans ({d['chunks_encoded']} chunks encoded, the rest from the base-vector store)"
    )
    click.echo(f"  gate {verdict}: {d['reason']}")
    if d["activated"]:
        forced = " (forced)" if d["forced"] else ""
        click.echo(
            f"  activated{forced}: now served by {d['reindex']['physical_name']}; "
            f"`ragcun rollback -c {d['collection']}` returns to model {d['previous'][:12]}"
        )
    else:
        click.echo(
            f"  not activated: model {d['candidate'][:12]} stays a registered candidate; "
            f"`ragcun reindex -c {d['collection']} --model {d['candidate'][:12]}` or `adapt --force` "
            "activates it anyway"
        )
    times = ", ".join(f"{k} {v:.1f}s" for k, v in d["seconds"].items())
    click.echo(f"  time: {times}")


def exit_if_refused(result) -> None:
    """Exit with status 3 (``EXIT_REFUSED``) when the gate refused the candidate and it was not activated."""
    from ragcun.collections.adapt import EXIT_REFUSED

    if not result.activated:
        click.get_current_context().exit(EXIT_REFUSED)


@cli.command()
@click.option("-c", "--collection", required=True, help="Logical collection to adapt.")
@click.option("--force", is_flag=True, help="Activate the fitted version even if the acceptance gate refuses it.")
@json_option
@pass_app
def adapt(app: AppContext, collection, force, as_json) -> None:
    """Fit this collection's own model version from its chunk text (no labels), then activate it if it passes.

    Exit status: 0 when the new version serves the collection; 3 when the acceptance gate refused it
    (it stays registered as a candidate, and the output says why); 1 on errors.
    """
    from ragcun.collections.adapt import adapt_collection

    with app.workspace() as ws:
        result = adapt_collection(ws, collection, force=force)
    emit(result.to_dict(), as_json, render_adapt)
    exit_if_refused(result)
