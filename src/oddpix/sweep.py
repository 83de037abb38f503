"""Sweeps: every cell (dataset, detector, normal class, seed, extra settings) run once, one JSON per cell.

A cell's params are params.yaml plus its settings (``model=``, ``data.dataset=``, ``data.normal_classes=``,
``seed=`` and the sweep's ``-S`` settings), validated before anything runs. Its result is written
atomically to ``<reports>/<dataset>/<model>/c<class>-s<seed>[-<hash of the -S settings>].json``: status,
params, metrics, seconds, device, package versions and the code version (a hash of the oddpix source). A
cell whose JSON exists with status ``ok`` for the same params and code version is not run again, so an
interrupted sweep resumes where it stopped and a changed detector reruns everything it touches. A cell
that fails (impossible params, a crash, out of memory, a killed worker) gets a JSON with the error and does
not stop the others; it is run again next time.

Engines (``oddpix leaderboard --engine``):

* ``dvc``: each cell is a named DVC experiment of the current commit (``dvc exp run --temp``), so
  ``dvc exp show`` lists them; an experiment of that name that exists for the commit is reused.
* ``ray``: each cell is a Ray task running the same stage functions as ``dvc repro``, in-process, in a
  scratch folder of its own; ``ray.init()`` starts a local Ray (every core and GPU of this machine) unless
  ``address`` (or ``RAY_ADDRESS``) names a cluster. A task asks for ``cpus_per_cell`` CPUs (and as many
  torch threads) and ``gpus_per_cell`` GPUs (0.25 packs four cells on one GPU; ``device: auto`` then runs
  on the GPU Ray assigned).
* ``local``: the same in-process runs, one after another in this process.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence

import yaml

from . import pipeline
from .errors import OddpixError
from .io import read_json, write_json

if TYPE_CHECKING:
    from .config import Params

ENGINES = ("dvc", "ray", "local")
_LOG_TAIL = 30  # lines of a failed cell's output kept in its JSON


def set_key(raw: dict, dotted: str, value: Any) -> None:
    """``raw["a"]["b"] = value`` for ``dotted = "a.b"``, creating the sections on the way."""
    node = raw
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise OddpixError(f"-S {dotted}: {key} is not a section")
    node[last] = value


def apply_settings(raw: dict, settings: Iterable[str]) -> dict:
    """A copy of ``raw`` with ``key=value`` settings applied (values read as YAML, as ``dvc exp run -S``)."""
    out = copy.deepcopy(raw)
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OddpixError(f"-S {item!r}: expected key=value")
        set_key(out, key.strip(), yaml.safe_load(value))
    return out


@dataclass(frozen=True)
class Cell:
    dataset: str
    model: str
    cls: int
    seed: int
    settings: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        return f"c{self.cls}-s{self.seed}{settings_suffix(self.settings)}"

    def path(self, reports: str | Path) -> Path:
        return Path(reports) / self.dataset / self.model / f"{self.tag}.json"

    @property
    def experiment(self) -> str:
        return experiment_name(self.dataset, self.model, self.cls, self.settings, self.seed)

    def dvc_args(self) -> list[str]:
        """``dvc exp run --temp -n <experiment> -S ...`` (without ``dvc``): this cell as a DVC experiment."""
        return ["exp", "run", "--temp", "-n", self.experiment, *(a for o in self.overrides() for a in ("-S", o))]

    def overrides(self) -> list[str]:
        return [f"model={self.model}", f"data.dataset={self.dataset}", f"data.normal_classes=[{self.cls}]",
                f"seed={self.seed}", *self.settings]

    def __str__(self) -> str:
        return f"{self.dataset}/{self.model}/{self.tag}"


def settings_suffix(settings: Sequence[str]) -> str:
    return "-" + hashlib.sha1("\n".join(sorted(settings)).encode()).hexdigest()[:6] if settings else ""


def cells_of(dataset: str, models: Sequence[str], classes: Sequence[int], seeds: Sequence[int],
             settings: Sequence[str] = ()) -> list[Cell]:
    return [Cell(dataset, m, c, s, tuple(settings)) for m in models for c in classes for s in seeds]


def experiment_name(dataset: str, model: str, cls: int, extra: Sequence[str] = (), seed: Optional[int] = None) -> str:
    seed_part = f"-s{seed}" if seed is not None else ""
    return f"lb-{dataset.replace('_', '-')}-{model}-c{cls}{seed_part}{settings_suffix(extra)}"


def dvc(args: list[str], capture: bool = True) -> str:
    try:
        proc = subprocess.run(["dvc", *args], capture_output=capture, text=True)
    except FileNotFoundError:
        raise OddpixError("`dvc` is not on PATH; activate the project's environment (source .venv/bin/activate)") from None
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout or "").strip().splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("error:", "ERROR"))]
        detail = (errors or lines)[-1:] if capture else []
        raise OddpixError(f"`dvc {' '.join(args[:3])} ...` failed" + (f": {detail[0]}" if detail else ""))
    return proc.stdout if capture else ""


def finished_experiments(show_json: str | None = None) -> dict[str, dict]:
    """Name -> flat metrics of metrics/metrics.json for the experiments of the current commit."""
    data = json.loads(show_json if show_json is not None else dvc(["exp", "show", "--json"]))
    out: dict[str, dict] = {}
    for commit in data:
        if commit.get("rev") == "workspace":
            continue
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                name = rev.get("name") or exp.get("name")
                metrics = (((rev.get("data") or {}).get("metrics") or {}).get("metrics/metrics.json") or {}).get("data")
                if name and metrics and not rev.get("error"):
                    out[name] = metrics
        break  # only the baseline commit (HEAD): results of older code do not count
    return out


def code_version() -> str:
    """A hash of every source file of the oddpix package: equal code, equal version."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def params_hash(raw: dict) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    import numpy
    import sklearn
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
           "scikit-learn": sklearn.__version__}
    if "ray" in sys.modules:
        out["ray"] = sys.modules["ray"].__version__
    return out


def git_commit() -> Optional[str]:
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def describe(exc: BaseException) -> str:
    if isinstance(exc, OddpixError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def run_cell(raw: dict, threads: Optional[int] = None) -> dict:
    """One cell in this process, in a scratch folder, its output captured: ``status``, ``metrics`` or
    ``error``, ``started`` (UTC), ``seconds``, ``device``, ``log`` (the last lines of its output)."""
    import torch

    from .runtime import resolve_device

    if threads:
        torch.set_num_threads(threads)
    output = io.StringIO()
    start = time.perf_counter()
    out: dict[str, Any] = {"host": platform.node(),
                           "started": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
    try:
        out["device"] = str(resolve_device(raw.get("device", "auto")))
        with tempfile.TemporaryDirectory(prefix="oddpix-cell-") as tmp, \
                contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            metrics = pipeline.run(raw, tmp)
        out.update(status="ok", metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float, str))})
    except Exception as exc:  # one failing cell must not stop the sweep: it is reported with its error
        out.update(status="failed", error=describe(exc))
    out["seconds"] = round(time.perf_counter() - start, 2)
    out["log"] = output.getvalue().splitlines()[-_LOG_TAIL:] if out["status"] == "failed" else []
    out["versions"] = versions()
    return out


def _ray_cell(raw: dict, threads: Optional[int] = None) -> dict:
    """:func:`run_cell` as a Ray task, plus ``gpus``: the GPUs Ray gave it (a share of one when
    ``gpus_per_cell`` < 1; none when 0), which are the ones ``device: auto`` sees."""
    import ray

    out = run_cell(raw, threads)
    out["gpus"] = [str(g) for g in ray.get_gpu_ids()]
    return out


@dataclass
class Plan:
    raws: dict[Cell, dict]      # each cell's params
    done: dict[Cell, dict]      # finished before (status ok, same params and code)
    todo: list[Cell]
    invalid: dict[Cell, str]    # params that do not validate: the message


def plan(base_raw: dict, cells: Sequence[Cell], reports: str | Path, code: str) -> Plan:
    """Each cell's params (validated), and which cells a previous run already finished."""
    from .config import parse_params

    raws, done, todo, invalid = {}, {}, [], {}
    for cell in cells:
        try:
            raws[cell] = apply_settings(base_raw, cell.overrides())
            parse_params(raws[cell])
        except OddpixError as exc:
            invalid[cell] = str(exc)
            continue
        previous = read_record(cell.path(reports))
        if (previous and previous.get("status") == "ok" and previous.get("code_version") == code
                and previous.get("params_hash") == params_hash(raws[cell])):
            done[cell] = previous
        else:
            todo.append(cell)
    return Plan(raws, done, todo, invalid)


def read_record(path: Path) -> Optional[dict]:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def write_record(cell: Cell, reports: str | Path, raw: Optional[dict], result: dict, engine: str,
                 code: str, commit: Optional[str]) -> dict:
    record = {"cell": asdict(cell), "engine": engine, "code_version": code, "git_commit": commit,
              "params_hash": params_hash(raw) if raw is not None else None,
              "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), **result, "params": raw}
    write_json(cell.path(reports), record)
    return record


class Progress:
    """One bar for the whole sweep: cells done / failed / left and tqdm's estimate of the time left."""

    def __init__(self, total: int, finished: int, enabled: bool = True):
        from tqdm import tqdm

        self.ok, self.failed, self.total = finished, 0, total
        self.bar = tqdm(total=total, initial=finished, desc="sweep", unit="cell", file=sys.stderr,
                        disable=not enabled, dynamic_ncols=True)
        self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"done {self.ok}, failed {self.failed}, left {self.total - self.ok - self.failed}")

    def update(self, record: dict) -> None:
        if record.get("status") == "ok":
            self.ok += 1
        else:
            self.failed += 1
        self._postfix()
        self.bar.update(1)

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


@dataclass
class SweepResult:
    records: dict[Cell, dict]
    ran: int
    reused: int

    @property
    def failed(self) -> list[Cell]:
        return [c for c, r in self.records.items() if r.get("status") != "ok"]


def run_sweep(base_raw: dict, cells: Sequence[Cell], reports: str | Path, engine: str = "local", *,
              address: Optional[str] = None, cpus_per_cell: float = 1.0, gpus_per_cell: float = 0.0,
              progress: bool = True, log: Callable[[str], None] = print, dry_run: bool = False) -> SweepResult:
    """Run every cell of ``cells`` that has no finished result in ``reports``; returns every cell's record.
    ``dry_run``: only say what would run (for the dvc engine, the commands), run and write nothing."""
    if engine not in ENGINES:
        raise OddpixError(f"--engine: {engine!r} is not an engine; valid choices: {', '.join(ENGINES)}")
    code = code_version()
    p = plan(base_raw, cells, reports, code)
    records = dict(p.done)
    log(f"sweep: {len(cells)} cells, {len(p.done)} finished already, {len(p.todo)} to run"
        + (f", {len(p.invalid)} with invalid params" if p.invalid else "") + f" (engine {engine})")
    if dry_run:
        for cell, message in p.invalid.items():
            log(f"invalid: {cell}: {message}")
        for cell in p.todo:
            log(f"would run: {cell}" + (f"  (dvc {' '.join(cell.dvc_args())})" if engine == "dvc" else ""))
        return SweepResult(records, 0, len(p.done))
    bar = Progress(len(cells), len(p.done), enabled=progress)
    commit = git_commit()
    try:
        for cell, message in p.invalid.items():
            records[cell] = write_record(cell, reports, None, {"status": "failed", "error": message}, engine, code,
                                         commit)
            bar.update(records[cell])

        def finish(cell: Cell, result: dict) -> None:
            records[cell] = write_record(cell, reports, p.raws[cell], result, engine, code, commit)
            if result["status"] != "ok":
                bar.write(f"sweep: {cell} failed: {result['error']}")
            bar.update(records[cell])

        runner = {"local": _run_local, "ray": _run_ray, "dvc": _run_dvc}[engine]
        runner(p, finish, address=address, cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell)
    finally:
        bar.close()
    return SweepResult(records, len(p.todo), len(p.done))


def _run_local(p: Plan, finish: Callable[[Cell, dict], None], **_) -> None:
    for cell in p.todo:
        finish(cell, run_cell(p.raws[cell]))


def _run_ray(p: Plan, finish: Callable[[Cell, dict], None], address: Optional[str] = None,
             cpus_per_cell: float = 1.0, gpus_per_cell: float = 0.0) -> None:
    if not p.todo:
        return
    try:
        import ray
    except ImportError:
        raise OddpixError("--engine ray needs Ray: pip install 'ray>=2.9' (the project's setup installs it)") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(_ray_cell).options(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell, max_retries=0)
        threads = max(1, int(cpus_per_cell))
        pending = {task.remote(p.raws[cell], threads): cell for cell in p.todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the worker died (killed, out of memory) or Ray failed the task
                    first = (str(exc).strip().splitlines() or [""])[0]
                    result = {"status": "failed", "error": f"ray: {type(exc).__name__}: {first}"}
                finish(cell, result)
    finally:
        if started:
            ray.shutdown()


def _run_dvc(p: Plan, finish: Callable[[Cell, dict], None], **_) -> None:
    existing = finished_experiments() if p.todo else {}
    for cell in p.todo:
        name = cell.experiment
        start = time.perf_counter()
        try:
            if name not in existing:
                dvc(cell.dvc_args(), capture=True)
                existing = finished_experiments()
            if name not in existing:
                raise OddpixError(f"experiment {name} finished without metrics/metrics.json")
            result = {"status": "ok", "metrics": existing[name], "experiment": name}
        except OddpixError as exc:
            result = {"status": "failed", "error": str(exc), "experiment": name}
        result.update(seconds=round(time.perf_counter() - start, 2), versions=versions())
        finish(cell, result)
