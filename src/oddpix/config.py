"""params.yaml -> validated, typed settings.

Every section is a frozen dataclass. Loading walks the YAML and the dataclasses together and stops at
the first problem with a one-line :class:`ConfigError` that names the full key (``models.cae.lr``) and
what would be valid: unknown keys (with a "did you mean"), unknown choices, wrong types and values out
of range. Model sections are looked up in the detector registry, so an unknown ``model`` lists the
detectors that exist.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Union

import yaml

from .errors import ConfigError

# --------------------------------------------------------------------------------------------------
# field helpers


def num(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
        lt: float | None = None) -> Any:
    """A numeric field with bounds checked on load."""
    return field(default=default, metadata={"ge": ge, "gt": gt, "le": le, "lt": lt})


def items(default: list, *, ge: float | None = None, gt: float | None = None, min_len: int = 0) -> Any:
    """A list field; bounds apply to each element, ``min_len`` to the list."""
    return field(default_factory=lambda: list(default), metadata={"ge": ge, "gt": gt, "min_len": min_len})


def section(cls: type) -> Any:
    return field(default_factory=cls)


# --------------------------------------------------------------------------------------------------
# sections


IDX_DATASETS = ("mnist", "fashion_mnist", "kmnist", "emnist_letters", "emnist_balanced")
CORRUPTION_TYPES = ("invert", "noise", "interpolate", "overlap", "underscore", "dot")


@dataclass(frozen=True)
class FolderConfig:
    """An image folder: one sub-directory per class (e.g. cell_images/Parasitized, cell_images/Uninfected)."""

    root: Optional[str] = None
    image_size: int = num(64, ge=8, le=1024)
    channels: int = num(3, ge=1, le=3)
    test_fraction: float = num(0.2, gt=0.0, lt=1.0)

    def problems(self) -> list[tuple[str, str]]:
        if self.channels == 2:
            return [("channels", "2 is not a valid choice; valid choices: 1 (grayscale), 3 (RGB)")]
        return []


@dataclass(frozen=True)
class CorruptionConfig:
    """The corrupted-letters set-up: a share of the test images gets one of ``types``."""

    fraction: float = num(0.1, gt=0.0, lt=1.0)
    types: list[str] = field(default_factory=lambda: list(CORRUPTION_TYPES))
    noise_std: float = num(0.3, gt=0.0, le=2.0)
    interpolate_alpha: list[float] = items([0.3, 0.7], ge=0.0)
    overlap_max_shift: float = num(0.25, ge=0.0, lt=1.0)
    underscore_thickness: int = num(2, ge=1, le=8)
    underscore_length: list[float] = items([0.4, 0.8], gt=0.0)
    dot_radius: list[float] = items([1.5, 3.0], gt=0.0)

    def problems(self) -> list[tuple[str, str]]:
        for t in self.types:
            if t not in CORRUPTION_TYPES:
                close = difflib.get_close_matches(t, CORRUPTION_TYPES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                return [("types", f"{t!r} is not a corruption{hint}; valid choices: {', '.join(CORRUPTION_TYPES)}")]
        if not self.types:
            return [("types", f"needs at least one of {', '.join(CORRUPTION_TYPES)}")]
        for key in ("interpolate_alpha", "underscore_length", "dot_radius"):
            pair = getattr(self, key)
            if len(pair) != 2 or pair[0] > pair[1]:
                return [(key, f"expected [low, high] with low <= high, got {pair}")]
        if self.interpolate_alpha[1] > 1 or self.underscore_length[1] > 1:
            bad = "interpolate_alpha" if self.interpolate_alpha[1] > 1 else "underscore_length"
            return [(bad, "values are fractions and must be <= 1")]
        return []


@dataclass(frozen=True)
class DataConfig:
    dataset: Literal["mnist", "fashion_mnist", "kmnist", "emnist_letters", "emnist_balanced", "folder"] = \
        "fashion_mnist"
    protocol: Literal["one_vs_rest", "cross_dataset", "corrupted", "folder"] = "one_vs_rest"
    normal_classes: Union[Literal["all"], list[Union[int, str]]] = field(default_factory=lambda: [0])
    anomaly_dataset: Optional[Literal["mnist", "fashion_mnist", "kmnist", "emnist_letters",
                                      "emnist_balanced"]] = None
    val_fraction: float = num(0.1, gt=0.0, lt=1.0)
    val_anomaly_fraction: float = num(0.0, ge=0.0, lt=0.9)
    contamination: float = num(0.0, ge=0.0, lt=0.5)
    mirror: Optional[str] = None
    checksums: Literal["original", "mirror", "off"] = "original"
    download: bool = True
    folder: FolderConfig = section(FolderConfig)
    corruption: CorruptionConfig = section(CorruptionConfig)

    def problems(self) -> list[tuple[str, str]]:
        if (self.protocol == "folder") != (self.dataset == "folder"):
            return [("protocol", "protocol 'folder' and dataset 'folder' go together; valid choices for dataset "
                     f"{self.dataset!r}: one_vs_rest, cross_dataset, corrupted")
                    if self.dataset != "folder" else ("dataset", "dataset 'folder' needs protocol: folder")]
        if self.protocol == "folder" and not self.folder.root:
            return [("folder.root", "protocol 'folder' needs the image folder (one sub-directory per class)")]
        if self.protocol == "cross_dataset":
            if self.anomaly_dataset is None:
                return [("anomaly_dataset", f"protocol 'cross_dataset' needs the dataset of the anomalies; "
                         f"valid choices: {', '.join(IDX_DATASETS)}")]
            if self.anomaly_dataset == self.dataset:
                return [("anomaly_dataset", "must differ from data.dataset")]
        if self.normal_classes == "all" and self.protocol in ("one_vs_rest", "folder"):
            return [("normal_classes", f"'all' leaves no anomalies under protocol {self.protocol!r}; list the "
                     "normal classes")]
        if self.normal_classes != "all":
            if not self.normal_classes:
                return [("normal_classes", "needs at least 1 item(s)")]
            want = str if self.protocol == "folder" else int
            bad = [c for c in self.normal_classes if not isinstance(c, want) or (want is int and c < 0)]
            if bad:
                what = "class folder names" if want is str else "class numbers (0, 1, ...)"
                return [("normal_classes", f"{bad[0]!r} is not valid; protocol {self.protocol!r} takes {what}")]
        return []


@dataclass(frozen=True)
class PreprocessConfig:
    normalize: Literal["unit", "standardize"] = "unit"
    image_size: Optional[int] = num(None, ge=4)
    channels: Optional[int] = num(None, ge=1, le=3)


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of the shared training loop; every model section has them."""

    epochs: int = num(20, ge=1)
    batch_size: int = num(128, ge=1)
    lr: float = num(1e-3, gt=0.0)
    weight_decay: float = num(0.0, ge=0.0)
    patience: int = num(5, ge=1)


@dataclass(frozen=True)
class KdeConfig:
    enabled: bool = True
    bandwidth: Union[float, Literal["scott", "silverman", "cv"]] = "scott"
    max_train: int = num(10000, ge=10)


@dataclass(frozen=True)
class ScoreConfig:
    component: str = "auto"  # auto: the detector's primary score (its first score component)
    batch_size: int = num(512, ge=1)


@dataclass(frozen=True)
class ThresholdConfig:
    rule: Literal["zscore", "percentile", "fixed", "otsu", "best_f1", "dual"] = "zscore"
    k: float = num(3.0, gt=0.0)
    two_sided: bool = False
    percentile: float = num(95.0, gt=0.0, lt=100.0)
    contamination: Optional[float] = num(None, gt=0.0, lt=0.5)
    value: Optional[float] = None
    dual_components: list[str] = field(default_factory=lambda: ["reconstruction", "density"])
    dual_rule: Literal["zscore", "percentile"] = "percentile"

    def problems(self) -> list[tuple[str, str]]:
        if self.rule == "fixed" and self.value is None:
            return [("value", "rule 'fixed' needs a number here")]
        if self.rule == "dual" and len(set(self.dual_components)) < 2:
            return [("dual_components", "rule 'dual' needs two different score components")]
        return []


@dataclass(frozen=True)
class PlotsConfig:
    n_images: int = num(8, ge=1, le=64)
    dpi: int = num(100, ge=30, le=600)


@dataclass(frozen=True)
class Params:
    seed: int = num(42, ge=0)
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


# --------------------------------------------------------------------------------------------------
# parsing


def _fail(path: str, message: str) -> typing.NoReturn:
    raise ConfigError(f"params: {path}: {message}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _check_bounds(value: Any, meta: Mapping[str, Any], path: str) -> None:
    checks = (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<"))
    for key, ok, sign in checks:
        bound = meta.get(key)
        if bound is not None and not ok(value, bound):
            _fail(path, f"{value!r} is out of range; it must be {sign} {bound}")


def _convert(tp: Any, value: Any, path: str, meta: Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            _fail(path, f"a value is required ({_type_name(tp)})")
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, path, meta)
            except ConfigError as exc:
                errors.append(str(exc))
        # a single non-None alternative: its message is the most precise one
        if len([a for a in args if a is not type(None)]) == 1:
            raise ConfigError(errors[0])
        _fail(path, f"{value!r} is not valid; expected {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(path, f"{value!r} is not a valid choice{hint}; valid choices: {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            _fail(path, f"expected a list, got {value!r}")
        if len(value) < meta.get("min_len", 0):
            _fail(path, f"needs at least {meta['min_len']} item(s)")
        inner_meta = {k: meta.get(k) for k in ("ge", "gt", "le", "lt")}
        return [_convert(args[0], v, f"{path}[{i}]", inner_meta) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return parse_section(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            _fail(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, f"expected an integer, got {value!r}")
        _check_bounds(value, meta, path)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, f"expected a number, got {value!r}")
        _check_bounds(float(value), meta, path)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(path, f"expected a string, got {value!r}")
        return value
    if tp is Any or origin is dict:
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a programming error, not user input


def parse_section(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass ``cls`` from the mapping ``raw``; ``path`` names it in messages."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        _fail(path or "params.yaml", f"expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f"{path}.{key}" if path else str(key)
            _fail(where, f"unknown key{hint}; valid keys: {', '.join(known)}")
    kwargs = {}
    for name, f in known.items():
        if name not in raw:
            continue
        where = f"{path}.{name}" if path else name
        kwargs[name] = _convert(hints[name], raw[name], where, f.metadata)
    obj = cls(**kwargs)
    for key, message in getattr(obj, "problems", lambda: [])():
        _fail(f"{path}.{key}" if path else key, message)
    return obj


def _model_registry() -> dict[str, type]:
    from .models import REGISTRY  # local import: models pull in torch

    return REGISTRY


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (as loaded from YAML) into :class:`Params`."""
    if not isinstance(raw, Mapping):
        _fail("params.yaml", "expected a mapping at the top level")
    registry = _model_registry()
    raw = dict(raw)
    raw_models = raw.pop("models", None) or {}
    params = parse_section(Params, raw, "")
    if not isinstance(raw_models, Mapping):
        _fail("models", "expected a mapping of model name -> settings")
    if params.model not in registry:
        close = difflib.get_close_matches(params.model, list(registry), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        _fail("model", f"unknown model {params.model!r}{hint}; valid choices: {', '.join(registry)}")
    models = {}
    for name, detector_cls in registry.items():
        models[name] = parse_section(detector_cls.Config, raw_models.get(name), f"models.{name}")
    for name in raw_models:
        if name not in registry:
            close = difflib.get_close_matches(str(name), list(registry), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(f"models.{name}", f"unknown model{hint}; valid choices: {', '.join(registry)}")
    params = dataclasses.replace(params, models=models)
    return _check_cross_section(params, registry)


def _check_cross_section(params: Params, registry: Mapping[str, type]) -> Params:
    """Checks across sections; returns params with ``score.component: auto`` resolved."""
    detector_cls = registry[params.model]
    if detector_cls.supervised and params.data.contamination == 0:
        _fail("data.contamination", f"model {params.model!r} is supervised and needs labelled anomalies in training; "
              "set data.contamination (e.g. 0.1) and data.val_anomaly_fraction (e.g. 0.1)")
    if detector_cls.needs_kde and not params.kde.enabled:
        _fail("kde.enabled", f"model {params.model!r} scores by the density of its latent codes; set it to true")
    components = list(detector_cls.score_components)
    if params.kde.enabled and detector_cls.has_encoder:
        components.append("density")
    if params.score.component == "auto":
        params = dataclasses.replace(params, score=dataclasses.replace(params.score, component=components[0]))
    if params.score.component not in components:
        _fail("score.component", f"{params.score.component!r} is not produced by model {params.model!r}; "
              f"valid choices: {', '.join(components)}")
    if params.threshold.rule == "dual":
        for name in params.threshold.dual_components:
            if name not in components:
                _fail("threshold.dual_components", f"{name!r} is not produced by model {params.model!r}; "
                      f"valid choices: {', '.join(components)}")
    if params.threshold.rule == "best_f1" and params.data.val_anomaly_fraction == 0:
        _fail("threshold.rule", "best_f1 needs labelled anomalies in the validation split; set "
              "data.val_anomaly_fraction (e.g. 0.1) or use zscore, percentile, fixed, otsu or dual")
    loss = getattr(params.model_config, "loss", None)
    if loss == "bce" and params.preprocess.normalize != "unit":
        _fail(f"models.{params.model}.loss", "'bce' needs pixels in [0, 1]; set preprocess.normalize: unit "
              "or use loss: mse")
    if params.data.dataset in IDX_DATASETS and params.data.normal_classes != "all":
        from .data.sources import DATASETS

        n = DATASETS[params.data.dataset].n_classes
        bad = [c for c in params.data.normal_classes if c >= n]
        if bad:
            _fail("data.normal_classes", f"{bad[0]} is not a class of {params.data.dataset}; valid choices: 0..{n - 1}")
        if len(set(params.data.normal_classes)) == n and params.data.protocol == "one_vs_rest":
            _fail("data.normal_classes", "every class is normal, so there would be no anomalies to detect")
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"params: {path} not found (run from the project root)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"params: {path} is not valid YAML: {exc}") from None
    return parse_params(raw or {})


def to_dict(obj: Any) -> Any:
    """Plain dict of a config object (for saving next to model weights)."""
    return dataclasses.asdict(obj)
