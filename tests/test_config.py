import pytest
import yaml

from oddpix.config import load_params, parse_params
from oddpix.errors import ConfigError


def test_shipped_params_are_valid():
    params = load_params("params.yaml")
    assert params.model == "cae"
    assert params.data.dataset == "fashion_mnist"
    assert params.data.normal_classes == [0]
    assert params.model_config.channels == [32, 64]
    # the default rule keeps its promise (5 % false alarms) on every task measured: docs/results/thresholds.md
    assert params.threshold.rule == "percentile" and params.threshold.percentile == 95.0
    assert params.threshold.k == 3.0  # mean + 3 std stays one -S away


def test_defaults_fill_missing_keys():
    params = parse_params({"models": {"cae": {"epochs": 3}}})
    assert params.models["cae"].epochs == 3
    assert params.models["cae"].lr == 1e-3
    assert params.models["ae"].hidden == [512, 128]


def test_numbers_yaml_reads_as_strings_are_numbers():
    import yaml

    raw = yaml.safe_load("models:\n  cae:\n    lr: 1e-3\n    weight_decay: 5E-4\n")
    assert raw["models"]["cae"]["lr"] == "1e-3"  # YAML 1.1: no dot in the mantissa, so a string
    params = parse_params(raw)
    assert params.models["cae"].lr == 1e-3 and params.models["cae"].weight_decay == 5e-4


@pytest.mark.parametrize("raw, message", [
    ({"model": "vea"}, "params: model: unknown model 'vea' (did you mean 'vae'?); valid choices: cae, ae, vae, "
                      "ae_kde, aae, deep_svdd, ganomaly, gan_mse, cnn, knn, geom, ssl, patch_knn, synth_seg, draem, cutpaste, fusion"),
    ({"models": {"cae": {"lerning_rate": 0.1}}}, "params: models.cae.lerning_rate: unknown key"),
    ({"models": {"cae": {"lr": -1}}}, "params: models.cae.lr: -1.0 is out of range; it must be > 0.0"),
    ({"models": {"cae": {"epochs": 2.5}}}, "params: models.cae.epochs: expected an integer, got 2.5"),
    ({"models": {"cae": {"lr": "fast"}}}, "params: models.cae.lr: expected a number, got 'fast'"),
    ({"models": {"cae": {"lr": float("nan")}}}, "params: models.cae.lr: nan is not a finite number"),
    ({"models": {"cea": {}}}, "params: models.cea: unknown model (did you mean 'cae'?); valid choices: cae, ae, vae"),
    ({"threshold": {"rule": "zscor"}}, "params: threshold.rule: 'zscor' is not a valid choice (did you mean "
                                       "'zscore'?); valid choices: zscore, percentile"),
    ({"data": {"dataset": "cifar"}}, "valid choices: mnist, fashion_mnist"),
    ({"data": {"val_fraction": 1.5}}, "params: data.val_fraction: 1.5 is out of range; it must be < 1.0"),
    ({"data": {"normal_classes": []}}, "params: data.normal_classes: needs at least 1 item(s)"),
    ({"data": {"normal_classes": [12]}}, "params: data.normal_classes: 12 is not a class of fashion_mnist"),
    ({"data": {"normal_classes": list(range(10))}}, "no anomalies to detect"),
    ({"device": "quantum"}, "params: device: 'quantum' is not a valid choice; valid choices: auto, cpu, cuda, mps"),
    ({"seeed": 1}, "params: seeed: unknown key (did you mean 'seed'?)"),
    ({"score": {"component": "density"}, "kde": {"enabled": False}},
     "params: score.component: 'density' is not produced by model 'cae'; valid choices: reconstruction, bce, mse"),
    ({"preprocess": {"normalize": "standardize"}}, "params: models.cae.loss: 'bce' needs pixels in [0, 1]"),
    ({"models": {"cae": {"output": "linear"}}}, "params: models.cae.loss: 'bce' needs output: sigmoid"),
    ({"kde": {"bandwidth": "wide"}}, "params: kde.bandwidth: 'wide' is not valid; expected float or 'scott' | "
                                     "'silverman' | 'cv'"),
    ({"data": "mnist"}, "params: data: expected a mapping of keys, got 'mnist'"),
])
def test_invalid_params_name_the_key_and_the_choices(raw, message):
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    assert message in str(info.value)


def test_auto_score_component_is_the_detectors_primary_score():
    assert parse_params({}).score.component == "reconstruction"
    assert parse_params({"model": "deep_svdd"}).score.component == "distance"
    assert parse_params({"model": "ganomaly"}).score.component == "latent"
    assert parse_params({"model": "vae"}).score.component == "elbo"
    assert parse_params({"model": "vae", "score": {"component": "pixel_fraction"}}).score.component == "pixel_fraction"


def test_numbers_and_strings_for_bandwidth():
    assert parse_params({"kde": {"bandwidth": 0.5}}).kde.bandwidth == 0.5
    assert parse_params({"kde": {"bandwidth": "cv"}}).kde.bandwidth == "cv"


def test_load_params_reports_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_params(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_every_shipped_key_is_known(tmp_path):
    """Round trip: the shipped file with one model switched still validates (what `-S model=ae` does)."""
    raw = yaml.safe_load(open("params.yaml"))
    raw["model"] = "ae"
    assert parse_params(raw).model_config.hidden == [512, 128]


@pytest.mark.parametrize("overrides", [
    ["seed=42"],  # a value set to what it is: the file stays byte for byte
    ["model=vae", "models.vae.epochs=3", "data.normal_classes=[1]", "preprocess.image_size=32"],
])
def test_dvc_exp_run_set_changes_only_the_lines_of_the_keys_it_sets(tmp_path, overrides):
    """`dvc exp run -S` rewrites params.yaml with its YAML writer: the shipped file is in the form it keeps."""
    from pathlib import Path

    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` / `dvc exp run --set-param` calls

    path = tmp_path / "params.yaml"
    before = (Path(__file__).resolve().parents[1] / "params.yaml").read_text()
    path.write_text(before)
    apply_overrides(str(path), overrides)
    after = path.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(after.splitlines()) == len(before.splitlines())
    expected = 0 if overrides == ["seed=42"] else len(overrides)
    assert len(changed) == expected, changed
    assert after == before or yaml.safe_load(after)["model"] == "vae"
