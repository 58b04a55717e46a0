"""``ragcun ask``: answer a question from a collection, with citations."""

from __future__ import annotations

import click

from ragcun.cli.main import (
    AppContext,
    cli,
    emit,
    json_option,
    pass_app,
    search_kwargs,
    search_options,
)


@cli.command()
@click.argument("question")
@click.option("-c", "--collection", required=True, help="Collection to answer from.")
@click.option("-k", "top_k", type=int, help="Passages to retrieve [default: TOP_K or 5].")
@click.option(
    "--generator", "generator_name", help="extractive | openai:MODEL | hf:PATH [default: MODEL_NAME or extractive]."
)
@click.option(
    "--prompt-template",
    type=click.Path(exists=True, dir_okay=False),
    help="Prompt file with {context} and {question} [default: PROMPT_TEMPLATE_FILE or built-in].",
)
@search_options
@json_option
@pass_app
def ask(
    app: AppContext,
    question,
    collection,
    top_k,
    generator_name,
    prompt_template,
    mode,
    fusion,
    where,
    diverse,
    diversity,
    as_json,
) -> None:
    """Answer QUESTION from the nearest passages of a collection, citing them as [n].

    Settings come from the options, then the environment, then ./.env (see config/config.example.env).
    """
    from pathlib import Path

    from ragcun.rag import Generator, RAGConfig, RAGPipeline, Retriever

    config = RAGConfig.from_settings(app.settings, top_k=top_k, model_name=generator_name)
    template = Path(prompt_template).read_text(encoding="utf-8") if prompt_template else None
    generator = Generator(config=config, prompt_template=template)

    # Text output shows the answer as it streams; JSON waits for the whole result.
    def show(piece: str) -> None:
        click.echo(piece, nl=False)

    with app.workspace() as ws:
        pipeline = RAGPipeline(
            Retriever(collection=collection, workspace=ws, **search_kwargs(mode, fusion, where, diverse, diversity)),
            generator,
            config=config,
        )
        result = pipeline.query(question, on_token=None if as_json else show).to_dict()

    def render(data: dict) -> None:
        click.echo("\n")
        # In order of first citation; a document cited through several passages is listed once, with all its numbers.
        by_document: dict[tuple, list[dict]] = {}
        for c in data["citations"]:
            by_document.setdefault((c["source"], c["doc_id"]), []).append(c)
        for (source, doc_id), cited in by_document.items():
            numbers = "".join(f"[{c['n']}]" for c in cited)
            nearest = min(cited, key=lambda c: c["distance"])
            click.echo(
                f"{numbers} {doc_id}  distance {nearest['distance']:.4f}  {source if source != doc_id else ''}".rstrip()
            )

    emit(result, as_json, render)
