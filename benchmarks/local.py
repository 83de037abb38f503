"""Local-anomaly benchmark: image and pixel metrics of detectors on set-ups where the anomaly is a small
region, plus the time and peak memory of each run.

Set-ups (``--setup``):

* ``dot``, ``underscore``, ``interpolate``: the corrupted protocol on ``--dataset`` with every class
  normal and only that corruption (10 % of the test images), at the params.yaml defaults;
* ``textures``: the generated local-defect dataset (``oddpix textures``: 1,200 textured colour images of
  ``--size`` px, a quarter with small dark spots, rings or scratches, with masks), folder protocol, normal
  class ``good``.

One run per invocation and detector (the peak memory is this process's): it runs the pipeline's stage
functions in-process (benchmarks/accuracy.py's ``run_one``), appends a JSON line to --out and rebuilds
the Markdown table --table from every line there::

    python benchmarks/local.py --setup dot --dataset mnist --model patch_knn
    python benchmarks/local.py --setup textures --model cae -S score.component=local_topk
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path

import click
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import machine, run_one, set_key  # noqa: E402

SETUPS = ("dot", "underscore", "interpolate", "textures")


def write_table(results: Path, table: Path) -> None:
    rows = {}
    for line in results.read_text().splitlines():
        r = json.loads(line)
        rows[(r["setup"], r["dataset"], r["model"], " ".join(r["sets"]))] = r  # the last run of a cell wins
    lines = ["<!-- written by benchmarks/local.py from its results file; do not edit by hand -->", "",
             "| set-up | dataset | detector | settings | image AUROC (component) | whole-image component | "
             "local_topk | detected (threshold) | pixel AUROC | PRO | s | peak MB | machine |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for (setup, dataset, model, sets), r in sorted(rows.items()):
        m = r["metrics"]
        whole = {"knn": "distance", "cae": "reconstruction", "patch_knn": "patch_max", "ssl": "fused"}.get(model)
        kind = [k for k in m if k.startswith("detected_")]
        rule = {"zscore": "z3", "percentile": "p95"}.get(m.get("threshold_rule"), m.get("threshold_rule"))
        detected = f"{m[kind[0]]:.2f} ({rule})" if len(kind) == 1 else "-"

        def fmt(key: str) -> str:
            return f"{m[key]:.3f}" if key in m else "-"
        lines.append(f"| {setup} | {dataset} | {model} | {sets or 'defaults'} | {m['auroc']:.3f} ({m['component']}) | "
                     f"{fmt(f'auroc_{whole}') if whole else '-'} | {fmt('auroc_local_topk')} | {detected} | "
                     f"{fmt('pixel_auroc')} | {fmt('pro')} | {r['seconds']:.0f} | {r['peak_mb']:.0f} | {r['machine']} |")
    table.write_text("\n".join(lines) + "\n")


@click.command()
@click.option("--setup", type=click.Choice(SETUPS), required=True)
@click.option("--dataset", default="mnist", show_default=True, help="corrupted set-ups: the dataset")
@click.option("--model", required=True)
@click.option("--size", default=64, show_default=True, help="textures: image size")
@click.option("-S", "--set", "sets", multiple=True, help="extra params, key=value (YAML value)")
@click.option("--params", "params_file", default="params.yaml", show_default=True)
@click.option("--out", default="benchmarks/local_results.jsonl", show_default=True)
@click.option("--table", default="benchmarks/local.md", show_default=True)
def main(setup, dataset, model, size, sets, params_file, out, table):
    raw = yaml.safe_load(Path(params_file).read_text())
    set_key(raw, "model", model)
    with tempfile.TemporaryDirectory() as tmp:
        if setup == "textures":
            from oddpix.data.synthetic import write_defect_folder

            dataset = f"textures{size}"
            root = write_defect_folder(Path(tmp) / "textures", n=1200, size=size, defect_share=0.25, seed=0)
            set_key(raw, "data.dataset", "folder")
            set_key(raw, "data.protocol", "folder")
            set_key(raw, "data.normal_classes", ["good"])
            set_key(raw, "data.folder", {"root": str(root), "image_size": size, "channels": 3, "test_fraction": 0.3})
        else:
            set_key(raw, "data.dataset", dataset)
            set_key(raw, "data.protocol", "corrupted")
            set_key(raw, "data.normal_classes", "all")
            set_key(raw, "data.corruption.types", [setup])
        for item in sets:
            key, _, value = item.partition("=")
            set_key(raw, key, yaml.safe_load(value))
        run_dir = Path(tmp) / "run"
        metrics, seconds = run_one(raw, run_dir)
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
