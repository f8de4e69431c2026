"""The ``atlas`` command: a thin layer over config, pipeline and render.

Every command reads ``--config`` (default ``./atlas.toml``), applies ``--set``
overrides, and reports bad input as one line naming the key or file, exit code 2.
Torch is imported only by the commands that run a model, so ``atlas --help`` and
``atlas render`` start fast.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable

import click

from atlas.config import DEVICES, Config, load_config, valid_device
from atlas.errors import AtlasError, user_os_error

log = logging.getLogger("atlas")


def _one_line_errors(func: Callable) -> Callable:
    """Bad input and a machine's limits (a full disk, a read-only folder) end the
    command with one line naming the key or file, exit 2; Ctrl-C with a word on what
    was kept, exit 130; anything else is a bug and keeps its traceback."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except AtlasError as e:
            _fail(str(e))
        except OSError as e:
            line = user_os_error(e)
            if line is None:
                raise
            _fail(line)
        except KeyboardInterrupt:
            click.echo("interrupted: finished work is kept; run the command again to resume", err=True)
            sys.exit(130)
    return wrapper


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _config_options(func: Callable) -> Callable:
    @click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                  default=Path("atlas.toml"), show_default=True, help="The atlas config file.")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="Override a config value, e.g. --set featurevis.steps=64 (repeatable).")
    @click.option("-v", "--verbose", is_flag=True, help="Log what each step does.")
    @functools.wraps(func)
    @_one_line_errors
    def wrapper(config_path: Path, overrides: tuple[str, ...], verbose: bool, **kwargs):
        rank = int(os.environ.get("RANK", "0"))  # set by torchrun: one line per rank tells them apart
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format=f"atlas[{rank}]: %(message)s" if "WORLD_SIZE" in os.environ else "atlas: %(message)s")
        return func(config_path=config_path, overrides=overrides, **kwargs)
    return wrapper


def _writable(config: Config, *keys: str) -> None:
    """Before any work: the folders that ``keys`` (site.out, sweep.cache) name can be
    written (their nearest existing folder, for one still to be made)."""
    for key in keys:
        section, name = key.split(".")
        folder = config.resolve(getattr(getattr(config, section), name))
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            reason = "a read-only file system" if _read_only(existing) else "permission denied"
            raise AtlasError(f"{key}: cannot write {existing} ({reason}); choose a folder you can write")


def _read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def _load(config_path: Path, overrides: tuple[str, ...], *, out: Path | None = None,
          device: str | None = None) -> Config:
    extra = []
    if device is not None:
        if not valid_device(device):
            raise AtlasError(f"--device: must be one of {', '.join(DEVICES)} or cuda:N (got {device!r})")
        extra.append(f"sweep.device={json.dumps(device)}")
    if out is not None:  # relative to where the command runs, not to the config file
        extra.append(f"site.out={json.dumps(str(out.resolve()))}")
    return load_config(config_path, [*overrides, *extra])


def _main_rank() -> bool:
    """Whether this process speaks for the sweep: always, but in a sharded sweep only rank 0."""
    return os.environ.get("RANK", "0") == "0"


def _end_sharded() -> None:
    """End a torchrun worker once its command succeeded, skipping the interpreter's
    teardown: after the process group is destroyed, a thread that the distributed
    runtime left joinable can still abort the process at exit ("terminate called
    without an active exception", SIGABRT), and torchrun then fails a sweep whose work
    is all done (seen about once in ten runs of the killed-rank test under load)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _progress(total: int, description: str):
    from tqdm import tqdm
    return tqdm(total=total, desc=description, unit="unit", leave=False,
                disable=not sys.stderr.isatty(), file=sys.stderr)


_out_option = click.option("--out", type=click.Path(path_type=Path),  # a file there: the config's check says so
                           help="Output folder for the site (default: site.out).")
_device_option = click.option("--device", help="auto, cpu, cuda or cuda:N (default: sweep.device).")
_force_option = click.option("--force", is_flag=True, help="Recompute artifacts that exist.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="atlas")
def main() -> None:
    """Atlas: sweep a vision model's layers and render a browsable atlas of its features."""


@main.command()
@_config_options
@_out_option
@_device_option
@_force_option
def build(config_path: Path, overrides: tuple[str, ...], out: Path | None, device: str | None,
          force: bool) -> None:
    """Sweep (what is not cached yet) and render the site."""
    from atlas.pipeline import sweep
    from atlas.render import render_site

    config = _load(config_path, overrides, out=out, device=device)
    _writable(config, "sweep.cache", "site.out")
    def render_so_far() -> None:  # a first look while the rest is swept
        report = render_site(config, partial=True)
        click.echo(f"rendered what is ready so far: {report.out / 'index.html'}", err=True)

    sweep(config, force=force, progress=_progress, after_model=render_so_far)
    if _main_rank():  # a sharded sweep renders once, on rank 0, after every rank is done
        report = render_site(config)
        click.echo(f"built {report.pages} pages in {report.out}")
        click.echo(report.size.report())
    _end_sharded()


@main.command("sweep")
@_config_options
@_device_option
@_force_option
def sweep_command(config_path: Path, overrides: tuple[str, ...], device: str | None, force: bool) -> None:
    """Run the analyses and fill the artifact store (no site)."""
    from atlas.pipeline import sweep

    config = _load(config_path, overrides, device=device)
    _writable(config, "sweep.cache")
    plan = sweep(config, force=force, progress=_progress)
    units = sum(len(layer.units) for model in plan.models for layer in model.layers)
    if _main_rank():
        click.echo(f"swept {len(plan.models)} models, {units} units into {config.resolve(config.sweep.cache)}")
    _end_sharded()


@main.command("plan")
@_config_options
@_device_option
@click.option("--ranks", type=click.IntRange(1, 100_000), multiple=True, metavar="N",
              help="Also give the wall time on N ranks of torchrun (repeatable; default 1, 2, 8).")
def plan_command(config_path: Path, overrides: tuple[str, ...], device: str | None, ranks: tuple[int, ...]) -> None:
    """Estimate each stage's time for a cold sweep, before any work (each model is
    loaded and its layers timed on the device, a few seconds each)."""
    from atlas.pipeline import pick_device
    from atlas.plan import GPU_SHARE, H100_PEAK, estimate, wall_seconds
    from atlas.render.size import estimate as site_estimate

    config = _load(config_path, overrides, device=device)
    target = pick_device(config.sweep.device)
    found = estimate(config, target)
    phases = found.phases
    stages: dict[str, float] = {}
    for phase in phases:
        stages[phase.stage] = stages.get(phase.stage, 0.0) + phase.seconds
        click.echo(f"{phase.model or '(all models)':<24} {phase.stage:<16} {_duration(phase.seconds):>9}  {phase.detail}")
    total = sum(stages.values())
    click.echo(f"\nby stage ({target}): " + ", ".join(f"{stage} {_duration(s)}" for stage, s in stages.items()))
    click.echo(f"total: {_duration(total)} of work")
    for n in ranks or (1, 2, 8):
        click.echo(f"  on {n} rank{'s' if n > 1 else ''}: about {_duration(wall_seconds(phases, n))}")
    if target.type == "cpu" and found.rates:
        rate = sum(found.rates.values()) / len(found.rates)
        click.echo(f"  on one H100: about {_duration(found.on_h100())} of arithmetic, from FLOPs (here "
                   f"{rate / 1e9:.0f} GFLOP/s on the forward pass; an H100 at an assumed {GPU_SHARE:.0%} of its "
                   f"{H100_PEAK / 1e12:.0f} TFLOP/s bf16 peak; image encoding and file writes not counted)")
    click.echo(site_estimate(found.units))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@main.command()
@_config_options
@_out_option
def render(config_path: Path, overrides: tuple[str, ...], out: Path | None) -> None:
    """Render the site from the store (no model is run)."""
    from atlas.render import render_site

    config = _load(config_path, overrides, out=out)
    _writable(config, "site.out")
    report = render_site(config)
    click.echo(f"rendered {report.pages} pages in {report.out} ({report.pages / report.seconds:.0f} pages/s)")
    click.echo(report.size.report())


@main.command()
@_config_options
@_out_option
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.option("--base", default="/", show_default=True,
              help="Serve the site under this path, as GitHub Pages serves a project (e.g. /atlas/).")
def serve(config_path: Path, overrides: tuple[str, ...], out: Path | None, port: int, base: str) -> None:
    """Serve the built site on http://127.0.0.1:PORT (a local static server)."""
    config = _load(config_path, overrides, out=out)
    root = config.resolve(config.site.out)
    if not (root / "index.html").exists():
        raise AtlasError(f"site.out: no site in {root}; run `atlas build` first")
    try:
        server = _Server(("127.0.0.1", port), _handler(root, base))
    except OSError as e:
        raise AtlasError(f"--port: cannot listen on 127.0.0.1:{port} ({e.strerror}); choose another port") from None
    click.echo(f"serving {root} at http://127.0.0.1:{server.server_port}{_normalize_base(base)} (Ctrl-C stops)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def _normalize_base(base: str) -> str:
    return "/" + base.strip("/") + "/" if base.strip("/") else "/"


class _Server(http.server.ThreadingHTTPServer):
    """A thread per request, and room for a burst of connections (the default
    backlog of 5 refused half of 200 concurrent requests)."""

    request_queue_size = 256
    daemon_threads = True


def _handler(root: Path, base: str) -> type[http.server.SimpleHTTPRequestHandler]:
    prefix = _normalize_base(base)

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".webp": "image/webp", ".js": "text/javascript", ".json": "application/json",
                          ".svg": "image/svg+xml", ".css": "text/css", ".html": "text/html"}

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def translate_path(self, path: str) -> str:
            if not path.startswith(prefix):
                return str(root / "__outside_base__")  # answered with 404
            return super().translate_path("/" + path[len(prefix):])

        def list_directory(self, path):  # a folder without index.html is not shown
            self.send_error(404, "Not found")
            return None

        def log_message(self, format: str, *args) -> None:
            log.info("serve: " + format, *args)

    return Handler


@main.command()
@click.argument("arch")
@click.option("--weights", default="none", show_default=True, help="none, a weights name, or a state dict path.")
@click.option("--input-size", type=click.IntRange(8, 8192), help="Side of the probe image (default: the model's).")
@click.option("--all", "show_all", is_flag=True, help="Also list modules that output no tensor or repeat.")
@_one_line_errors
def layers(arch: str, weights: str, input_size: int | None, show_all: bool) -> None:
    """List the layers of ARCH (e.g. torchvision:resnet18) with channels and output sizes."""
    import torch

    from atlas.config import ModelConfig
    from atlas.models import load_model
    from atlas.nn.capture import describe_layers

    spec = ModelConfig(name=arch, arch=arch, layers=(), weights=weights, input_size=input_size)
    model = load_model(spec, root=Path.cwd(), key="")
    probe = torch.zeros(1, 3, model.input_size, model.input_size)
    records = describe_layers(model.module, model.normalize(probe))
    click.echo(f"{arch}: input 3×{model.input_size}×{model.input_size}")
    click.echo(f"{'layer':<40} {'type':<20} {'channels':>8}  output")
    for record in records:
        shape = record["shape"]
        if shape is None and not show_all:
            continue
        channels = str(shape[0]) if shape else "-"
        size = "×".join(str(s) for s in shape) if shape else "-"
        calls = f"  (called {record['calls']}×, first call is captured)" if record["calls"] > 1 else ""
        grid = f"  ({record['grid'].describe()})" if record["grid"] else ""
        click.echo(f"{record['name']:<40} {record['type']:<20} {channels:>8}  {size}{grid}{calls}")


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--arch", help="The model (e.g. torchvision:resnet18); default: a model of the embedded zoo.")
@click.option("--weights", default="none", show_default=True, help="none, a weights name, or a state dict path.")
@click.option("--images", help="A folder of images (default: the embedded world for the zoo, ./photos otherwise).")
@click.option("--layers", "count", type=click.IntRange(1, 50), default=3, show_default=True,
              help="How many layers to propose, spread over depth.")
@_one_line_errors
def init(folder: Path, arch: str | None, weights: str, images: str | None, count: int) -> None:
    """Write a commented starter atlas.toml into FOLDER (it must not have one)."""
    from atlas.starter import starter_config, write_starter

    path = write_starter(folder, starter_config(arch, weights, images, count))
    click.echo(f"wrote {path}; next: atlas plan --config {path}, then atlas build --config {path}")


@main.group()
def data() -> None:
    """Make dataset folders."""


@data.command("samples")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--crops", "per_photo", type=click.IntRange(1, 100_000), default=25, show_default=True,
              help="Random crops per photograph.")
@click.option("--size", type=click.IntRange(8, 8192), default=256, show_default=True,
              help="Pixels on a side of each crop.")
@click.option("--seed", type=int, default=0, show_default=True)
@_one_line_errors
def data_samples(folder: Path, per_photo: int, size: int, seed: int) -> None:
    """Write seeded random crops of the photographs shipped by scikit-image,
    scikit-learn and matplotlib into FOLDER (one subfolder per photograph), a dataset
    for `[data] images` (needs the real extra: pip install -e ".[real]")."""
    from atlas.data.samples import write_samples

    logging.basicConfig(level=logging.WARNING, format="atlas: %(message)s")
    counts = write_samples(folder, per_photo=per_photo, size=size, seed=seed)
    click.echo(f"{folder}: {sum(counts.values())} crops of {len(counts)} photographs ({', '.join(counts)})")


@main.command()
@click.argument("names", nargs=-1)
@click.option("--epochs", type=int, help="Passes over the training scenes (default: the recipe's).")
@click.option("--images", type=int, help="Training scenes to generate (default: the recipe's).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write NAME.pt and NAME.log.jsonl (default: the zoo's weights folder).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=Path(".atlas-cache/world"),
              show_default=True, help="Where generated training scenes are kept between runs.")
@_one_line_errors
def train(names: tuple[str, ...], epochs: int | None, images: int | None, out: Path | None,
          cache: Path) -> None:
    """Train zoo models on the world from scratch (all of them when no NAMES are given)."""
    from atlas.models import zoo
    from atlas.train import TrainConfig, train_and_save

    logging.basicConfig(level=logging.INFO, format="atlas: %(message)s")
    unknown = [n for n in names if n not in zoo.ZOO]
    if unknown:
        raise AtlasError(f"unknown zoo model {unknown[0]!r}; the zoo has {', '.join(zoo.ZOO)}")
    for name in names or tuple(zoo.ZOO):
        entry = zoo.ZOO[name]
        overrides = {k: v for k, v in {"epochs": epochs, "train_images": images}.items() if v is not None}
        cfg = TrainConfig(arch=entry.arch, task=entry.task, seed=entry.seed, **overrides)
        summary = train_and_save(cfg, out or zoo.WEIGHTS_DIR, name, cache)
        click.echo(f"{name}: held-out accuracy {summary['test_accuracy']:.3f} in {summary['seconds']:.0f}s")


if __name__ == "__main__":
    main()
