"""params.yaml -> validated, typed settings, assembled from the sections their owners declare.

Each section is declared and checked beside the code that uses it (``DataConfig`` in
``data/protocols.py``, ``ThresholdConfig`` in ``thresholds.py``, a detector's ``Config`` in its module,
...); :mod:`oddpix.schema` parses them. This module only puts the sections together, looks the chosen
detector up in the registry, and checks what spans two sections (a supervised detector needs labelled
anomalies, a BCE loss needs pixels in [0, 1], ...). Every problem is one :class:`ConfigError` line that
names the full key and what would be valid.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import yaml

from .data.protocols import DataConfig
from .data.sources import DATASETS
from .density import KdeConfig
from .errors import ConfigError
from .models import REGISTRY, SUPERVISED_HINT
from .plots import PlotsConfig
from .preprocess import PreprocessConfig
from .schema import did_you_mean, fail, num, parse_section, section
from .scoring import ScoreConfig
from .thresholds import LABELS_NEEDED, ThresholdConfig


@dataclass(frozen=True)
class Params:
    seed: int = num(42, ge=0, le=2 ** 32 - 1)  # NumPy's and PyTorch's seeds are 32-bit
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    data: DataConfig = section(DataConfig)
    preprocess: PreprocessConfig = section(PreprocessConfig)
    model: str = "cae"
    models: dict[str, Any] = field(default_factory=dict)
    kde: KdeConfig = section(KdeConfig)
    score: ScoreConfig = section(ScoreConfig)
    threshold: ThresholdConfig = section(ThresholdConfig)
    plots: PlotsConfig = section(PlotsConfig)

    @property
    def model_config(self) -> Any:
        return self.models[self.model]


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (as loaded from YAML) into :class:`Params`."""
    if not isinstance(raw, Mapping):
        fail("params.yaml", "expected a mapping at the top level")
    raw = dict(raw)
    raw_models = raw.pop("models", None) or {}
    params = parse_section(Params, raw, "")
    if not isinstance(raw_models, Mapping):
        fail("models", "expected a mapping of model name -> settings")
    if params.model not in REGISTRY:
        fail("model", f"unknown model {params.model!r}{did_you_mean(params.model, REGISTRY)}; valid choices: "
             + ", ".join(REGISTRY))
    for name in raw_models:
        if name not in REGISTRY:
            fail(f"models.{name}", f"unknown model{did_you_mean(name, REGISTRY)}; valid choices: " + ", ".join(REGISTRY))
    models = {name: parse_section(cls.Config, raw_models.get(name), f"models.{name}") for name, cls in REGISTRY.items()}
    return _check_cross_section(dataclasses.replace(params, models=models))


def _check_detector(params: Params) -> Params:
    """The chosen detector against the other sections; returns params with ``score.component: auto`` resolved."""
    detector_cls = REGISTRY[params.model]
    if detector_cls.supervised and params.data.contamination == 0:
        fail("data.contamination", f"model {params.model!r} is supervised and needs labelled anomalies in "
             f"training; {SUPERVISED_HINT}")
    if detector_cls.needs_kde and not params.kde.enabled:
        fail("kde.enabled", f"model {params.model!r} scores by the density of its latent codes; set it to true")
    components = detector_cls.components(kde=params.kde.enabled)
    if params.score.component == "auto":
        params = dataclasses.replace(params, score=dataclasses.replace(params.score, component=components[0]))
    wanted = [("score.component", params.score.component)]
    if params.threshold.rule == "dual":
        wanted += [("threshold.dual_components", name) for name in params.threshold.dual_components]
    for key, name in wanted:
        if name not in components:
            fail(key, f"{name!r} is not produced by model {params.model!r}; valid choices: {', '.join(components)}")
    sections = {f"models.{params.model}": params.model_config}
    if hasattr(params.model_config, "member_configs"):  # fusion: its members' settings as well
        sections.update({f"models.{params.model}.members.{name}": config
                         for name, config in params.model_config.member_configs().items()})
    for key, config in sections.items():
        if getattr(config, "loss", None) == "bce" and params.preprocess.normalize != "unit":
            fail(f"{key}.loss", "'bce' needs pixels in [0, 1]; set preprocess.normalize: unit or use loss: mse")
    return params


def _check_cross_section(params: Params) -> Params:
    params = _check_detector(params)
    if params.threshold.needs_labels and params.data.val_anomaly_fraction == 0:
        fail("threshold.rule", f"{params.threshold.base_rule} {LABELS_NEEDED}")
    if params.data.dataset in DATASETS and params.data.normal_classes != "all":
        n = DATASETS[params.data.dataset].n_classes
        bad = [c for c in params.data.normal_classes if c >= n]
        if bad:
            fail("data.normal_classes", f"{bad[0]} is not a class of {params.data.dataset}; valid choices: 0..{n - 1}")
        if len(set(params.data.normal_classes)) == n and params.data.protocol == "one_vs_rest":
            fail("data.normal_classes", "every class is normal, so there would be no anomalies to detect")
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    return parse_params(read_raw_params(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (as DVC does) instead of keeping the last."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_raw_params(path: str | Path = "params.yaml") -> dict:
    """``params.yaml`` as the mapping YAML reads (not yet validated)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"params: {path} not found (run from the project root)") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"params: {path} is not valid YAML: {problem or exc}{where}") from None
    return raw or {}


class ParamsView:
    """The part of :class:`Params` that a stage declares it reads (its DVC ``params`` in dvc.yaml).

    Reading any other key raises at once, so a stage cannot depend on a setting that DVC does not track
    for it (the in-process pipeline tests run every stage through this view). ``models.${model}`` stands
    for the chosen detector's section (``params.model_config``).
    """

    def __init__(self, obj: Any, keys: tuple[str, ...], where: str, prefix: str = ""):
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_keys", keys)
        object.__setattr__(self, "_where", where)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        full = self._prefix + name
        if full in self._keys:
            return getattr(self._obj, name)
        if any(k.startswith(full + ".") for k in self._keys):
            return ParamsView(getattr(self._obj, name), self._keys, self._where, full + ".")
        if full == "model_config" and "models.${model}" in self._keys and "model" in self._keys:
            return self._obj.model_config
        attr = getattr(type(self._obj), name, None)
        if callable(attr) or isinstance(attr, property):  # a method reads through the view as well
            return attr.__get__(self)
        raise AttributeError(f"{self._where} reads params {full!r}, which it does not declare "
                             f"(declared: {', '.join(self._keys)}); add it to @reads and to dvc.yaml")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("params are read-only")


def reads(*keys: str) -> Callable:
    """Declare the params keys a step function reads (exactly its stage's DVC ``params``); the step then
    receives a :class:`ParamsView` that refuses any other key."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(params: Params, *args, **kwargs):
            return fn(ParamsView(params, keys, f"{fn.__module__}.{fn.__name__}"), *args, **kwargs)

        run.params_read = keys
        return run

    return wrap
