"""Where a sweep's cells run: in this process (``local``), as Ray tasks (``ray``), or as named DVC
experiments (``dvc``); each engine hands every finished cell's result to the sweep as it comes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import platform
import subprocess
import shutil
import tempfile
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional

from .. import pipeline
from ..errors import OddpixError
from .cells import Cell
from .records import versions

if TYPE_CHECKING:
    from .records import Plan

_LOG_TAIL = 30  # lines of a failed cell's output kept in its JSON


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


def describe(exc: BaseException) -> str:
    if isinstance(exc, OddpixError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def run_cell(raw: dict, threads: Optional[int] = None, keep: Optional[str] = None) -> dict:
    """One cell in this process, in a scratch folder, its output captured: ``status``, ``metrics`` or
    ``error``, ``started`` (UTC), ``seconds``, ``device``, ``machine``, ``peak_mb`` (this process's peak
    memory so far), ``scores_sha256`` (of the validation and test score tables), ``log`` (the last lines of
    its output when it failed). ``keep``: copy the cell's score tables (``val.csv``, ``test.csv`` and the
    rest of ``data/scores``) to this folder, for analyses that need every image's scores."""
    import torch

    from ..runtime import machine, peak_memory_mb, resolve_device

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
            out["scores_sha256"] = _scores_hash(pipeline.path(tmp, "scores"))
            if keep:
                shutil.copytree(pipeline.path(tmp, "scores"), keep, dirs_exist_ok=True)
        out.update(status="ok", metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float, str))})
    except Exception as exc:  # one failing cell must not stop the sweep: it is reported with its error
        out.update(status="failed", error=describe(exc))
    out["seconds"] = round(time.perf_counter() - start, 2)
    out["machine"] = machine(out.get("device", "cpu"))
    out["peak_mb"] = peak_memory_mb()
    out["log"] = output.getvalue().splitlines()[-_LOG_TAIL:] if out["status"] == "failed" else []
    out["versions"] = versions()
    return out


def _scores_hash(scores_dir) -> str:
    digest = hashlib.sha256()
    for name in ("val", "test"):
        digest.update((scores_dir / f"{name}.csv").read_bytes())
    return digest.hexdigest()


def _ray_cell(raw: dict, threads: Optional[int] = None, keep: Optional[str] = None) -> dict:
    """:func:`run_cell` as a Ray task, plus ``gpus``: the GPUs Ray gave it (a share of one when
    ``gpus_per_cell`` < 1; none when 0), which are the ones ``device: auto`` sees."""
    import ray

    from ..provenance import code_version

    out = run_cell(raw, threads, keep)
    out["gpus"] = [str(g) for g in ray.get_gpu_ids()]
    out["node_id"] = ray.get_runtime_context().get_node_id()  # which machine of the cluster ran it
    out["node_code_version"] = code_version()
    return out


def _run_local(p: Plan, finish: Callable[[Cell, dict], None], keep: Optional[Callable[[Cell], str]] = None,
               **_) -> None:
    for cell in p.todo:
        finish(cell, run_cell(p.raws[cell], keep=keep(cell) if keep else None))


class _Notices(logging.Handler):
    """Ray's start-up warnings (e.g. on token authentication) as one line each through ``note``, which
    prints above the progress bar instead of into it."""

    def __init__(self, note: Callable[[str], None]):
        super().__init__(logging.WARNING)
        self.note = note

    def emit(self, record: logging.LogRecord) -> None:
        self.note(f"ray: {record.getMessage()}")


def _ray_init(ray, address: Optional[str], note: Callable[[str], None]) -> None:
    notices, handler = logging.getLogger("ray"), _Notices(note)
    propagate, handlers = notices.propagate, list(notices.handlers)
    for h in handlers:  # Ray's own stderr handler would write into the bar
        notices.removeHandler(h)
    notices.addHandler(handler)
    notices.propagate = False
    try:
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    finally:
        notices.removeHandler(handler)
        for h in handlers:
            notices.addHandler(h)
        notices.propagate = propagate


def _run_ray(p: Plan, finish: Callable[[Cell, dict], None], address: Optional[str] = None,
             cpus_per_cell: float = 1.0, gpus_per_cell: float = 0.0,
             keep: Optional[Callable[[Cell], str]] = None, note: Callable[[str], None] = print) -> None:
    if not p.todo:
        return
    try:
        import ray
    except ImportError:
        raise OddpixError("--engine ray needs Ray: pip install 'ray>=2.9' (the project's setup installs it)") from None
    from ..provenance import code_version

    code = code_version()
    started = not ray.is_initialized()
    if started:
        _ray_init(ray, address, note)
    try:
        task = ray.remote(_ray_cell).options(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell, max_retries=0)
        threads = max(1, int(cpus_per_cell))
        pending = {task.remote(p.raws[cell], threads, keep(cell) if keep else None): cell for cell in p.todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the worker died (killed, out of memory) or Ray failed the task
                    first = (str(exc).strip().splitlines() or [""])[0]
                    result = {"status": "failed", "error": f"ray: {type(exc).__name__}: {first}"}
                other = result.get("node_code_version")
                if other is not None and other != code:  # never mix two versions of the code in one table
                    result = {**result, "status": "failed", "metrics": {},
                              "error": f"ray: node {result.get('node_id', '?')[:12]} runs oddpix code version {other}, "
                                       f"this machine {code}: install the same code on every node"}
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
