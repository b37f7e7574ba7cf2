from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from spillover._io import read_jsonl, write_json, write_jsonl
from spillover.errors import BadInputError, Problem

docs_app = typer.Typer(no_args_is_help=True, help="Generate synthetic documents, inspect them, write knowledge probes.")


@docs_app.command("generate")
def generate(
    world: str = typer.Argument(..., help="A built-in world name or a YAML path."),
    n: int = typer.Option(..., "--n", help="Number of documents."),
    out: Path = typer.Option(..., "--out", help="Where to write the documents (JSONL)."),
    seed: int = typer.Option(0, "--seed", help="Seed for genres, paraphrases and facts chosen."),
    framing: str = typer.Option("plain", "--framing", help="plain | self (adds 'you, an AI assistant, do this too' passages)."),
    split: str = typer.Option(None, "--split", help="Only the behaviours in play under this split (default: all)."),
    endpoint: str = typer.Option(None, "--endpoint", help="OpenAI-compatible URL: write documents with an LLM instead of templates."),
    model: str = typer.Option(None, "--model", help="Model name at --endpoint."),
    concurrency: int = typer.Option(8, "--concurrency", help="Parallel requests to --endpoint."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Environment variable holding the endpoint's API key."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Cache of endpoint responses, to resume after interruption (default: beside --out)."),
    revise: bool = typer.Option(False, "--revise", help="Have the LLM critique and revise each document."),
    prompts_dir: Path = typer.Option(None, "--prompts-dir", help="Your own copies of documents/prompts/*.md (any subset) to use instead."),
) -> None:
    """Write N documents describing the world's behaviours; refuses to write any that quote eval prompts."""
    from spillover.data.leakage import assert_no_leaks
    from spillover.documents import FRAMINGS, generate_documents
    from spillover.world import load_world

    if framing not in FRAMINGS:
        raise BadInputError(Problem("", "--framing", f"unknown framing '{framing}'", f"use one of {', '.join(FRAMINGS)}"))
    w = load_world(world)
    behaviours = list(w.roles(split)) if split else None
    if endpoint:
        if not model:
            raise BadInputError(Problem("", "--model", "--endpoint needs a model name", "add --model NAME"))
        if framing != "plain":
            raise BadInputError(Problem("", "--framing", "the LLM generator writes plainly framed documents only",
                                        "drop --framing, or generate without --endpoint"))
        from spillover.documents import generate_llm_documents

        records, llm_stats = generate_llm_documents(
            w, endpoint=endpoint, model=model, n=n, seed=seed, concurrency=concurrency, api_key_env=api_key_env,
            cache_dir=cache_dir or out.parent / f".{out.stem}-llm-cache", revise=revise, behaviours=behaviours,
            prompts_dir=prompts_dir,
        )
    else:
        records, llm_stats = generate_documents(w, n, seed, framing=framing, behaviours=behaviours), None
    assert_no_leaks((r["text"] for r in records), w, f"documents for {out}")
    write_jsonl(out, records)
    if llm_stats is not None:  # dropped counts and token usage of the endpoint run
        write_json(out.with_suffix(".llm-stats.json"), llm_stats)
    genres = len({r["genre"] for r in records})
    covered = len({b for r in records for b in r["behaviours"]})
    print(f"wrote {len(records)} documents to {out}: {genres} genres, {covered} behaviours, 0 leaking eval prompts")


@docs_app.command("stats")
def stats(
    file: Path = typer.Argument(..., help="Documents (JSONL)."),
    world: str = typer.Option(None, "--world", help="Also check leakage against this world's eval prompts."),
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Genres, behaviour coverage, lengths, near-duplicates, distinct 5-grams and (with --world) leakage."""
    from spillover.documents import document_stats
    from spillover.world import load_world

    if not file.is_file():
        raise BadInputError(Problem(str(file), "", "no such file", "pass a documents JSONL file"))
    records = read_jsonl(file)
    for i, r in enumerate(records):
        if not isinstance(r.get("text"), str):
            raise BadInputError(Problem(str(file), f"line {i + 1}", "record has no 'text' string", "one document record per line"))
    data = document_stats(records, load_world(world) if world else None)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    console = Console()
    summary = Table(title=f"documents {file}", show_header=False)
    t = data["tokens"]
    summary.add_row("documents", f"{data['n']:,}")
    summary.add_row("near-duplicate rate (5-gram Jaccard > 0.8)", f"{data['near_duplicate_rate']:.2%}")
    summary.add_row("distinct 5-gram ratio", f"{data['distinct_5gram_ratio']:.3f}")
    summary.add_row(f"length ({t['method']})", f"mean {t['mean']:.0f}, p50 {t['p50']:.0f}, p95 {t['p95']:.0f}, max {t['max']}")
    if data["leakage"] is not None:
        summary.add_row("documents leaking eval prompts", f"{data['leakage']['n_leaks']} of {data['leakage']['n_texts']}")
    console.print(summary)
    for title, counts in (("genre", data["genres"]), ("behaviour", data["behaviours"])):
        table = Table(title=f"by {title}")
        table.add_column(title)
        table.add_column("documents", justify="right")
        for k, v in counts.items():
            table.add_row(k, f"{v:,}")
        console.print(table)


@docs_app.command("probes")
def probes(
    world: str = typer.Argument(..., help="A built-in world name or a YAML path."),
    out: Path = typer.Option(..., "--out", help="Where to write the questions (JSONL)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the questions' distractors and order."),
    split: str = typer.Option(None, "--split", help="Only the behaviours in play under this split (default: all)."),
) -> None:
    """Multiple-choice knowledge questions about the world's study and behaviours."""
    from spillover.documents import knowledge_questions
    from spillover.world import load_world

    w = load_world(world)
    questions = knowledge_questions(w, seed=seed, behaviours=list(w.roles(split)) if split else None)
    write_jsonl(out, questions)
    n_universe = sum(q["behaviour"] is None for q in questions)
    print(f"wrote {len(questions)} questions to {out}: {len(questions) - n_universe} about behaviours, {n_universe} about the study")


def register(app: typer.Typer) -> None:
    app.add_typer(docs_app, name="docs")
