"""Local-anomaly benchmark: image and pixel metrics of detectors on set-ups where the anomaly is a small
region, plus the time and peak memory of each run.

Set-ups (``--setup``):

* ``dot``, ``underscore``, ``interpolate``: the corrupted protocol on ``--dataset`` with every class
  normal and only that corruption (10 % of the test images), at the params.yaml defaults;
* ``textures``: the generated local-defect dataset (``oddpix textures``: 1,200 textured colour images of
  ``--size`` px, a quarter with small dark spots, rings or scratches, with masks), folder protocol, normal
  class ``good``;
* ``tiles``: real photos, the magnetic-tile surface defects (Huang et al. 2020; ``magnetic-tiles/`` under
  $ODDPIX_DATA_MIRROR, or ``--root``): 952 defect-free tiles (``MT_Free``, normal), 392 with blowholes,
  breaks, cracks, frays or uneven grinding, with pixel masks; grayscale, read at ``--size`` px; a fifth of
  the free tiles and every defective one are tested (``data.folder.anomalies: test``). Each tile was
  photographed under six lightings (file names ``exp1`` ... ``exp6``); split at random, a test tile's other
  five photos are in the training set and a detector scores "seen this tile" (measured: knn after a local
  contrast normalisation 0.960 image AUROC, patch_knn 0.952 at 0.75 pixel AUROC (seed 42); 0.649 / 0.669 with the
  tiles kept together).
  So the split is by tile (``data.folder.groups``, benchmarks/magnetic_tiles_groups.csv, written by
  :func:`tile_groups` when missing: photos of two lightings of one class that are each other's nearest
  after that normalisation are one tile; 174 of 234 groups come out with exactly six photos).

One run per invocation and detector (the peak memory is this process's): it runs the pipeline's stage
functions in-process (benchmarks/accuracy.py's ``run_one``), appends a JSON line to --out and rebuilds
the Markdown table --table from every line there; runs that differ only by ``-S seed=N`` are one row (the
mean, and the std of the image AUROC over the seeds)::

    python benchmarks/local.py --setup dot --dataset mnist --model patch_knn
    python benchmarks/local.py --setup textures --model cae -S score.component=local_topk
"""

from __future__ import annotations

import json
import os
import statistics
import resource
import sys
import tempfile
from pathlib import Path

import click
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import machine, run_one, set_key  # noqa: E402

from oddpix.models import REGISTRY  # noqa: E402

SETUPS = ("dot", "underscore", "interpolate", "textures", "tiles")


GROUPS = Path(__file__).resolve().parent / "magnetic_tiles_groups.csv"


def tile_groups(root: Path, out: Path = GROUPS, size: int = 64) -> Path:
    """Write ``file,group`` for the magnetic tiles: mutual nearest neighbours between the photos of two
    lightings (``exp<k>_`` file-name prefix) of one class, after a local contrast normalisation that takes
    the lighting out, are joined (union-find); a group is one physical tile."""
    import numpy as np
    import torch

    from oddpix.data.folder import load_image_folder
    from oddpix.maps import gaussian_blur
    from oddpix.preprocess import local_contrast

    images = load_image_folder(root, size, 1, warn=lambda m: None)
    x = torch.from_numpy(images.x).permute(0, 3, 1, 2).float() / 255
    # zero edges (not the pipeline's replicated ones): the committed groups were found that way
    z = gaussian_blur(local_contrast(x, 4.0, edges="zeros"), 1.0).flatten(1)
    session = np.asarray([Path(f).name.split("_")[0] for f in images.files])
    parent = np.arange(len(x))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for k in range(len(images.classes)):
        for a in np.unique(session[images.y == k]):
            for b in np.unique(session[images.y == k]):
                if a >= b:
                    continue
                ia = np.flatnonzero((images.y == k) & (session == a))
                ib = np.flatnonzero((images.y == k) & (session == b))
                d = torch.cdist(z[ia], z[ib])
                forward, backward = d.argmin(1).numpy(), d.argmin(0).numpy()
                for i, j in enumerate(forward):
                    if backward[j] == i:
                        parent[find(ia[i])] = find(ib[j])
    rows = ["file,group"] + [f"{f},{find(i)}" for i, f in enumerate(images.files)]
    out.write_text("\n".join(rows) + "\n")
    return out


def _merge(runs: list[dict]) -> dict:
    """One row from the runs of a cell with different seeds: numbers averaged (AUROC's std kept), every
    machine the runs ran on (as benchmarks/accuracy.py), the rest from the first run."""
    first = runs[0]
    metrics = dict(first["metrics"])
    for key, value in first["metrics"].items():
        if isinstance(value, (int, float)) and all(key in r["metrics"] for r in runs):
            metrics[key] = statistics.mean(r["metrics"][key] for r in runs)
    spread = statistics.stdev(r["metrics"]["auroc"] for r in runs) if len(runs) > 1 else None
    return {**first, "metrics": metrics, "seeds": len(runs), "auroc_std": spread,
            "seconds": statistics.mean(r["seconds"] for r in runs), "peak_mb": max(r["peak_mb"] for r in runs),
            "machine": "; ".join(sorted({r["machine"] for r in runs}))}


def write_table(results: Path, table: Path) -> None:
    cells: dict[tuple, dict] = {}
    for line in results.read_text().splitlines():
        r = json.loads(line)
        seed = [s for s in r["sets"] if s.startswith("seed=")]
        sets = " ".join(s for s in r["sets"] if not s.startswith("seed="))
        # the last run of a cell and seed wins; the seeds of a cell are averaged
        cells.setdefault((r["setup"], r["dataset"], r["model"], sets), {})[seed[0] if seed else "seed=params"] = r
    rows = {key: _merge(list(runs.values())) for key, runs in cells.items()}
    lines = ["<!-- written by benchmarks/local.py from its results file; do not edit by hand -->", "",
             "| set-up | dataset | detector | settings | seeds | image AUROC (component) | whole-image component | "
             "local_topk | detected (threshold) | pixel AUROC | PRO | s | peak MB | machine |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for (setup, dataset, model, sets), r in sorted(rows.items()):
        m = r["metrics"]
        whole = REGISTRY[model].score_components[0] if model in REGISTRY else None  # the detector's default
        kind = [k for k in m if k.startswith("detected_")]
        rule = {"zscore": "z3", "percentile": "p95"}.get(m.get("threshold_rule"), m.get("threshold_rule"))
        share = m[kind[0]] if len(kind) == 1 else m.get("recall")  # several kinds: all anomalies together
        detected = f"{share:.2f} ({rule})" if share is not None else "-"
        spread = f" +-{r['auroc_std']:.3f}" if r["auroc_std"] is not None else ""

        def fmt(key: str) -> str:
            return f"{m[key]:.3f}" if key in m else "-"
        lines.append(f"| {setup} | {dataset} | {model} | {sets or 'defaults'} | {r['seeds']} | {m['auroc']:.3f}{spread} "
                     f"({m['component']}) | {fmt(f'auroc_{whole}') if whole else '-'} | {fmt('auroc_local_topk')} | "
                     f"{detected} | {fmt('pixel_auroc')} | {fmt('pro')} | {r['seconds']:.0f} | {r['peak_mb']:.0f} | "
                     f"{r['machine']} |")
    kinds = sorted({k[len("auroc_class_"):] for r in rows.values() for k in r["metrics"] if k.startswith("auroc_class_")})
    if kinds:  # folder set-ups: image AUROC of each anomalous class against the test normals
        lines += ["", "Image AUROC per anomalous class (folder set-ups; mean of the seeds):", "",
                  "| set-up | dataset | detector | settings | " + " | ".join(kinds) + " |",
                  "|---|---|---|---|" + "---:|" * len(kinds)]
        for (setup, dataset, model, sets), r in sorted(rows.items()):
            m = r["metrics"]
            if any(f"auroc_class_{k}" in m for k in kinds):
                lines.append(f"| {setup} | {dataset} | {model} | {sets or 'defaults'} | " + " | ".join(
                    f"{m[f'auroc_class_{k}']:.3f}" if f"auroc_class_{k}" in m else "-" for k in kinds) + " |")
    table.write_text("\n".join(lines) + "\n")


def configure(raw: dict, setup: str, dataset: str, size: int, root, tmp: Path) -> str:
    """Set the data keys of ``raw`` for ``setup`` (textures are written under ``tmp``); returns the name the
    results file gives the dataset."""
    if setup == "textures":
        from oddpix.data.synthetic import write_defect_folder

        root = write_defect_folder(tmp / "textures", n=1200, size=size, defect_share=0.25, seed=0)
        set_key(raw, "data.dataset", "folder")
        set_key(raw, "data.protocol", "folder")
        set_key(raw, "data.normal_classes", ["good"])
        set_key(raw, "data.folder", {"root": str(root), "image_size": size, "channels": 3, "test_fraction": 0.3})
        return f"textures{size}"
    if setup == "tiles":
        root = Path(root or Path(os.environ.get("ODDPIX_DATA_MIRROR", "")) / "magnetic-tiles")
        if not (root / "images" / "MT_Free").is_dir():
            raise click.UsageError(f"{root} is not the magnetic-tiles folder (images/MT_Free/ ...); pass --root "
                                   "or set ODDPIX_DATA_MIRROR")
        set_key(raw, "data.dataset", "folder")
        set_key(raw, "data.protocol", "folder")
        set_key(raw, "data.normal_classes", ["MT_Free"])
        groups = GROUPS if GROUPS.exists() else tile_groups(root)
        set_key(raw, "data.folder", {"root": str(root), "image_size": size, "channels": 1, "test_fraction": 0.2,
                                     "anomalies": "test", "groups": str(groups)})
        return f"tiles{size}"
    set_key(raw, "data.dataset", dataset)
    set_key(raw, "data.protocol", "corrupted")
    set_key(raw, "data.normal_classes", "all")
    set_key(raw, "data.corruption.types", [setup])
    return dataset


@click.command()
@click.option("--setup", type=click.Choice(SETUPS), required=True)
@click.option("--dataset", default="mnist", show_default=True, help="corrupted set-ups: the dataset")
@click.option("--model", required=True)
@click.option("--size", default=64, show_default=True, help="textures, tiles: image size")
@click.option("--root", default=None, help="tiles: the magnetic-tiles folder (default: $ODDPIX_DATA_MIRROR/magnetic-tiles)")
@click.option("-S", "--set", "sets", multiple=True, help="extra params, key=value (YAML value)")
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--out", default="benchmarks/local_results.jsonl", show_default=True)
@click.option("--table", default="benchmarks/local.md", show_default=True)
@click.option("--keep", default=None, type=click.Path(file_okay=False),
              help="run in this folder and keep it (prepared data, scores, maps), e.g. for benchmarks/dot_misses.py")
def main(setup, dataset, model, size, root, sets, params_file, out, table, keep):
    raw = yaml.safe_load(Path(params_file).read_text())
    set_key(raw, "model", model)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = configure(raw, setup, dataset, size, root, Path(tmp))
        for item in sets:
            key, _, value = item.partition("=")
            set_key(raw, key, yaml.safe_load(value))
        metrics, seconds = run_one(raw, Path(keep) if keep else Path(tmp) / "run")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"setup": setup, "dataset": dataset, "model": model, "sets": list(sets), "seconds": round(seconds, 1),
           "peak_mb": round(peak_mb), "machine": machine(),
           "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != "train"}}
    with open(out, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    write_table(Path(out), Path(table))
    m = row["metrics"]
    print(f"RESULT {setup} {dataset} {model}: AUROC {m['auroc']:.4f} ({m['component']}), pixel AUROC "
          f"{m.get('pixel_auroc', float('nan')):.4f}, PRO {m.get('pro', float('nan')):.4f}; {seconds:.0f}s, "
          f"peak {peak_mb:.0f} MB", flush=True)


if __name__ == "__main__":
    main()
