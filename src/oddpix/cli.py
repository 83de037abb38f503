"""The ``oddpix`` command for users: score new images, compare detectors over many runs."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import click

from .errors import OddpixError, one_line


class Commands(click.Group):
    """The commands; one that needs an optional group that is not installed says which to install."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (ImportError, OSError) as exc:  # a missing group, a full disk: one line, not a traceback
            if (error := one_line(exc)) is None:
                raise
            click.echo(f"error: {error}", err=True)
            sys.exit(1)


@click.group(cls=Commands)
def main() -> None:
    """oddpix: deep anomaly detection on images, as a DVC pipeline."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", "model_path", default="models/detector.pt", show_default=True)
@click.option("--kde", "kde_path", default="models/kde.pt", show_default=True)
@click.option("--threshold", "threshold_path", default="models/threshold.json", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--components/--no-components", default=False, help="also print every score component")
@click.option("--maps", "maps_dir", default=None, help="write one anomaly heat-map PNG per scored image here")
@click.option("--bundle", "bundle_dir", default=None,
              help="score with this exported bundle (`oddpix export`) instead: onnxruntime, no PyTorch")
@click.option("--max-aspect", default=None, type=click.FloatRange(min=1.0),
              help="refuse an image whose width/height differs from the model's input by more than this factor "
                   "(the resize would distort it); by default every image is resized, as training images were, "
                   "each with a note")
def predict(paths, model_path, kde_path, threshold_path, fmt, components, maps_dir, bundle_dir, max_aspect):
    """Score IMAGE files (or every image under a DIRECTORY) with the trained model and threshold.

    Exit status 0 when every file was scored, 1 when some could not be (each gets its own error).
    """
    try:
        if bundle_dir is not None:
            from .served import ServedBundle

            scorer = ServedBundle(bundle_dir)
            results = scorer.predict_files(paths, maps_dir, max_aspect)
            by = f"bundle {bundle_dir}: {scorer.detector}, model {scorer.manifest.get('model_id')}"
        else:
            from .bundle import RunBundle
            from .predict import predict_files

            scorer = RunBundle.read(model_path, kde_path, threshold_path)
            results = predict_files(scorer, paths, maps_dir, max_aspect)
            by = f"{model_path}: {scorer.detector.name}, model {scorer.model_id}"
    except OddpixError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if not results:
        click.echo("error: no image files found in " + ", ".join(paths), err=True)
        sys.exit(1)
    rows = [r.row() for r in results]
    if not components:
        rows = [{k: row[k] for k in ("file", "score", "anomaly", "p_value", "error", "note")} for row in rows]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        keys = list(dict.fromkeys(k for row in rows for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buf.getvalue(), nl=False)
    else:
        width = max(len(r.file) for r in results)
        fixed = ("file", "score", "anomaly", "p_value", "error", "note")
        comp_names = [k for k in rows[0] if k not in fixed] if components else []
        click.echo(f"{'file':<{width}}  {'score':>10}  anomaly  {'p_value':>8}"
                   + "".join(f"  {c:>14}" for c in comp_names))
        for r, row in zip(results, rows):
            if r.score is None:
                click.echo(f"{r.file:<{width}}  {'-':>10}  error: {r.error}")
            else:
                extra = "".join(f"  {row[c]:>14.6g}" for c in comp_names)
                p_text = "-" if r.p_value is None else f"{r.p_value:.4f}"
                flag = "yes" if r.anomaly else "no"
                note = f"  error: {r.error}" if r.error else ""  # scored, but its heat map was not written
                click.echo(f"{r.file:<{width}}  {r.score:>10.6g}  {flag:<7}  {p_text:>8}{extra}{note}")
        click.echo(f"threshold: {scorer.threshold.rule} on {scorer.threshold.component}; "
                   f"{sum(bool(r.anomaly) for r in results)} of {sum(r.score is not None for r in results)} "
                   "scored images flagged anomalous", err=True)
    resized = [r for r in results if r.note and r.score is not None]
    if resized:
        click.echo(f"note: {len(resized)} image(s) {resized[0].note.split(' from ')[0]} to the model's input "
                   f"(e.g. {resized[0].file}: {resized[0].note})", err=True)
    click.echo(f"scored by {by}", err=True)
    failed = [r for r in results if r.error]
    if failed:
        unscored = sum(r.score is None for r in failed)
        click.echo(f"{unscored} file(s) could not be scored" if unscored == len(failed) else
                   f"{unscored} file(s) could not be scored, {len(failed) - unscored} heat map(s) not written", err=True)
        sys.exit(1)


@main.command("export")
@click.option("--out", "out_dir", default="bundle", show_default=True, help="the bundle folder written")
@click.option("--model", "model_path", default="models/detector.pt", show_default=True)
@click.option("--kde", "kde_path", default="models/kde.pt", show_default=True)
@click.option("--threshold", "threshold_path", default="models/threshold.json", show_default=True)
@click.option("--params", "params_file", default="params.yaml", show_default=True,
              help="recorded in the manifest (the params the model came from)")
@click.option("--exp", "experiment", default=None,
              help="instead: copy the bundle the export stage made in this DVC experiment (or commit, branch, tag)")
def export_command(out_dir, model_path, kde_path, threshold_path, params_file, experiment):
    """Write the trained detector, its preprocessing, KDE and threshold as one self-contained folder
    (model.onnx + manifest.json) that `oddpix predict --bundle` scores with onnxruntime, without PyTorch."""
    try:
        if experiment is not None:
            from .export import experiment_bundle

            out = experiment_bundle(experiment, out_dir)
        else:
            from .bundle import RunBundle
            from .export import export
            from .provenance import code_version

            bundle = RunBundle.read(model_path, kde_path, threshold_path)
            params = None
            if Path(params_file).exists():
                from .config import read_raw_params

                params = read_raw_params(params_file)
            out = export(bundle, out_dir, params=params, code_version=code_version())
    except OddpixError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    from .served import read_manifest

    manifest = read_manifest(out)
    click.echo(f"bundle: {out}/ (model.onnx, manifest.json): {manifest['detector']}, {manifest['input']['height']}x"
               f"{manifest['input']['width']}x{manifest['input']['channels']} pixels in, outputs "
               f"{', '.join(manifest['outputs'])}; checked against PyTorch on {manifest['check']['images']} images: "
               f"largest relative difference {max(manifest['check']['relative_differences'].values()):.1g}")


@main.command("compare")
@click.option("--baseline", default=None, help="the row the others are compared with (default: the last commit)")
@click.option("--tolerance", "tolerances", multiple=True, metavar="METRIC=VALUE",
              help="how far a metric may differ from the baseline before it is marked (defaults: auroc and auprc "
                   "0.002, f1 and false_alarms 0.02)")
@click.option("-n", "num", default=1, show_default=True, type=click.IntRange(1),
              help="the experiments of the last n commits")
@click.option("--all-commits", is_flag=True, help="the experiments of every commit")
def compare_command(baseline, tolerances, num, all_commits):
    """The workspace, the last commit and its DVC experiments side by side: what ran (model, dataset, normal
    classes, epochs, score component) and how well, each metric marked where it differs from the baseline by
    more than a machine's floating-point noise."""
    from .compare import exp_show, parse_tolerances, pick_baseline, rows_from_exp_show, table

    try:
        bounds = parse_tolerances(tolerances)
        rows = [row for row in rows_from_exp_show(exp_show(all_commits=all_commits, num=num)) if row.metrics or row.params]
        if not rows:
            raise OddpixError("no experiments with metrics here yet: run `dvc repro` or `dvc exp run` first")
        reference = pick_baseline(rows, baseline)
    except OddpixError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for line in table(rows, reference, bounds):
        click.echo(line)


@main.command("serve")
@click.option("--bundle", "bundle_dir", required=True, help="an exported bundle (`oddpix export`)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--max-file-mb", default=16.0, show_default=True, type=click.FloatRange(min=0.001))
@click.option("--max-files", default=64, show_default=True, type=click.IntRange(1))
@click.option("--max-pixels", default=25_000_000, show_default=True, type=click.IntRange(1))
def serve_command(bundle_dir, host, port, max_file_mb, max_files, max_pixels):
    """Serve an exported bundle over HTTP: POST /v1/score (multipart 'files'), GET /healthz, and a page at /
    to drop images on (heat-map overlay, score, p-value, decision). onnxruntime, no PyTorch."""
    try:
        from .service import ServiceLimits, serve
    except ImportError:
        click.echo("error: oddpix serve needs fastapi and uvicorn: pip install 'oddpix[serve]'", err=True)
        sys.exit(1)
    limit = int(max_file_mb * 1024 ** 2)
    try:
        serve(bundle_dir, host, port, ServiceLimits(max_file_bytes=limit, max_request_bytes=4 * limit,
                                                    max_files=max_files, max_pixels=max_pixels))
    except OddpixError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@main.command("textures")
@click.argument("out_dir")
@click.option("--n", default=600, show_default=True, type=click.IntRange(1), help="images in all")
@click.option("--size", default=64, show_default=True, type=click.IntRange(24, 1024))
@click.option("--defect-share", default=0.25, show_default=True, type=click.FloatRange(0.0, 1.0))
@click.option("--seed", default=0, show_default=True)
def textures(out_dir, n, size, defect_share, seed):
    """Write a generated local-defect dataset (textured colour images, small dark spots, rings and
    scratches on a share of them, with masks) as an image folder: OUT_DIR/good, OUT_DIR/defect,
    OUT_DIR/masks/defect. Use it with data.protocol=folder, data.folder.root=OUT_DIR, normal class good."""
    from .data.synthetic import write_defect_folder

    root = write_defect_folder(out_dir, n, size, defect_share, seed)
    click.echo(f"textures: {n} images of {size}x{size} in {root} (good/, defect/, masks/defect/)")


@main.command()
@click.option("--models", default="knn,cae,ae", show_default=True, help="comma-separated detectors (knn: the baseline)")
@click.option("--classes", default="0-9", show_default=True, help="normal classes: 0-9, 0,3,5 ...")
@click.option("--dataset", default=None,
              help="dataset, or several comma-separated (default: data.dataset of params.yaml)")
@click.option("--seeds", default=1, show_default=True, type=int,
              help="seeds per cell: seed, seed+1, ... of params.yaml")
@click.option("-S", "--set", "extra", multiple=True, help="extra params for every run, key=value (as `dvc exp run -S`)")
@click.option("--metric", default="auroc", show_default=True)
@click.option("--engine", type=click.Choice(["dvc", "ray", "local"]), default="dvc", show_default=True,
              help="dvc: named DVC experiments; ray: Ray tasks (local Ray or --address); local: in this process")
@click.option("--address", default=None, help="ray: join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
@click.option("--cpus-per-cell", default=1.0, show_default=True, type=click.FloatRange(min=0.0),
              help="ray: CPUs (and torch threads) per cell")
@click.option("--gpus-per-cell", default=0.0, show_default=True, type=click.FloatRange(min=0.0),
              help="ray: GPUs per cell (0.25 packs four cells on one GPU)")
@click.option("--reports", default="reports/sweep", show_default=True, help="one JSON per cell, for resuming")
@click.option("--out", default="reports/leaderboard", show_default=True)
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--dry-run", is_flag=True, help="say which cells would run (dvc: the commands); run nothing")
def leaderboard(models, classes, dataset, seeds, extra, metric, engine, address, cpus_per_cell, gpus_per_cell,
                reports, out, quiet, dry_run):
    """Run every detector over every normal class (and seed) and write one leaderboard per dataset.

    Every cell's result is a JSON under --reports; a cell already finished with the same params and code
    is not run again, so an interrupted sweep resumes. The exit status is 1 when some cell failed.
    """
    from . import leaderboard as lb
    from .config import read_raw_params

    try:
        base = read_raw_params("params.yaml")
        datasets = [d.strip() for d in (dataset or "").split(",") if d.strip()]  # none: params.yaml's
        request = lb.Request([m.strip() for m in models.split(",") if m.strip()], lb.parse_classes(classes),
                             datasets, seeds, tuple(extra), metric)
        text, failed = lb.run(request, base, engine, reports, out, log=lambda m: click.echo(m, err=True),
                              address=address, cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell,
                              progress=not quiet, dry_run=dry_run)
    except OddpixError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if text:
        click.echo(text)
    if failed:
        click.echo(f"error: {len(failed)} cell(s) failed:\n" + "\n".join(f"  {f}" for f in failed), err=True)
        sys.exit(1)


@main.command()
@click.argument("preset")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: one cell after another in this process; ray: cells in parallel (local Ray or --address)")
@click.option("--models", default="", help="only these detectors of the preset (comma-separated)")
@click.option("--only", default="", help="only the cells whose name (as --dry-run prints it) matches one of these "
              "comma-separated patterns, e.g. 'folder/draem/*-s42-*'")
@click.option("--params", "params_file", default="params.yaml", show_default=True, help="the params under the overlay")
@click.option("--results", default=None, help="records file (default: benchmarks/results/<preset>.jsonl)")
@click.option("--page", default=None, help="the page written (default: docs/results/<preset>.md)")
@click.option("--reports", default="reports/bench", show_default=True, help="per-cell JSON and generated data")
@click.option("--address", default=None, help="ray: join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
@click.option("--cpus-per-cell", default=1.0, show_default=True, type=click.FloatRange(min=0.0))
@click.option("--gpus-per-cell", default=0.0, show_default=True, type=click.FloatRange(min=0.0))
@click.option("--table-only", is_flag=True, help="only rebuild the page from the records file")
@click.option("--rerun", is_flag=True, help="run every cell again, finished or not (e.g. to time an engine)")
@click.option("--dry-run", is_flag=True, help="say which cells would run; run nothing")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--keep-scores", is_flag=True, help="keep each run cell's score tables (val.csv, test.csv) beside its "
              "record under --reports, for analyses of every image's scores")
def bench(preset, engine, models, only, params_file, results, page, reports, address, cpus_per_cell, gpus_per_cell,
          table_only, rerun, dry_run, quiet, keep_scores):
    """Run the benchmark PRESET (a file such as benchmarks/tiles.yaml: a params overlay and its cells).

    Cells with a finished record for the same params and code are not run again. Every record is kept in
    the results file and the page under docs/results/ is rebuilt from it. Exit status 1 when a cell failed.
    """
    from . import presets
    from .config import read_raw_params

    try:
        _, failed = presets.run(preset, read_raw_params(params_file), engine, results=results, page=page,
                                reports=reports, models=[m.strip() for m in models.split(",") if m.strip()],
                                only=[p.strip() for p in only.split(",") if p.strip()],
                                table_only=table_only, dry_run=dry_run, rerun=rerun,
                                log=lambda m: click.echo(m, err=True),
                                address=address, cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell,
                                progress=not quiet, keep_scores=keep_scores)
    except OddpixError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if failed:
        click.echo(f"error: {len(failed)} cell(s) failed:\n" + "\n".join(f"  {f}" for f in failed), err=True)
        sys.exit(1)


@main.command("tile-groups")
@click.argument("root")
@click.option("--out", required=True, help="the file,group CSV to write (data.folder.groups reads it)")
@click.option("--size", default=64, show_default=True, type=click.IntRange(8, 1024))
def tile_groups_command(root, out, size):
    """Group photos of one physical object taken under several lightings (files named exp<k>_...):
    mutual nearest neighbours between two lightings of a class, after a local contrast normalisation,
    are one group. Use the CSV as data.folder.groups so a split never puts one object on both sides."""
    from pathlib import Path

    from .data.groups import tile_groups

    try:
        path = tile_groups(Path(root), Path(out), size)
    except OddpixError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    groups = {line.rsplit(",", 1)[1] for line in path.read_text().splitlines()[1:]}
    click.echo(f"tile-groups: {len(groups)} groups written to {path}")


@main.command("dvc-yaml")
@click.option("--write", is_flag=True, help="write dvc.yaml (default: print it)")
@click.option("--check", is_flag=True, help="exit 1 when dvc.yaml differs from the stage table")
@click.option("--file", "target", default="dvc.yaml", show_default=True, help="the file to write or check")
def dvc_yaml(write, check, target):
    """dvc.yaml from the stage table in oddpix.pipeline: deps are the code each stage imports, params the
    keys its step reads. Run it in the repository root after changing a stage or its imports."""
    from pathlib import Path

    from .dvc_yaml import generate

    try:
        text = generate(".")
    except OddpixError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    current = Path(target).read_text() if Path(target).exists() else ""
    if check:
        if current != text:
            click.echo(f"error: {target} differs from the stage table; run `oddpix dvc-yaml --write`", err=True)
            sys.exit(1)
        click.echo(f"{target} matches the stage table")
    elif write:
        Path(target).write_text(text)
        click.echo(f"{target}: {len(text.splitlines())} lines written" + ("" if current != text else " (unchanged)"))
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":
    main()
