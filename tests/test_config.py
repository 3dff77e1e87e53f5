"""Config files and overrides: typed, strict, and helpful when wrong."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mixma.config import ConfigError, dump_config, load_config
from mixma.runs.malmm import MALMMRunConfig as MALMMTrainConfig
from mixma.runs.mama import MAMARunConfig as MAMATrainConfig
from mixma.video.mixed import MixedConfig


def test_defaults_file_and_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("data:\n  root: bench\n  num_frames: 16\noptim:\n  lr: 1e-4\n  betas: [0.9, 0.98]\n")
    cfg = load_config(MALMMTrainConfig, path, ["run.epochs=3", "data.mixed={mode: strobe}", "model.init=null"])
    assert cfg.data.root == "bench" and cfg.data.num_frames == 16 and cfg.run.epochs == 3
    assert cfg.optim.lr == 1e-4 and cfg.optim.betas == (0.9, 0.98)  # "1e-4" reads as a string in YAML 1.1
    assert cfg.data.mixed == MixedConfig(mode="strobe") and cfg.model.init is None
    assert cfg.data.prompts.qa == "Question: {question} Short answer:"  # untouched defaults stay
    again = load_config(MALMMTrainConfig, None, [])
    assert again.run.epochs == 5


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(MALMMTrainConfig, None, ["optim.lr=3e-4", "model.small.llm_layers=3"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(MALMMTrainConfig, path) == cfg


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optm.lr=1"], "unknown key(s) optm"),
        (["optim.learning_rate=1"], "config.optim: unknown key(s) learning_rate"),
        (["optim.lr=fast"], "config.optim.lr: expected a number"),
        (["run.epochs=2.5"], "config.run.epochs: expected an integer"),
        (["model.train_llm=maybe"], "config.model.train_llm: expected true or false"),
        (["optim.betas=[0.9]"], "expected 2 values"),
        (["kind=mama"], "must be one of 'malmm'"),
        (["noequals"], "must look like section.key=value"),
        (["data.root.x=1"], "config.data.root: expected a string"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(MALMMTrainConfig, None, overrides)
    assert message in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(MALMMTrainConfig, tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(MALMMTrainConfig, tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(MALMMTrainConfig, tmp_path / "list.yaml")


ROOT = Path(__file__).resolve().parents[1]


def _experiment(name: str):
    """An experiments/ script as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_configs_load_strictly_with_every_override_the_studies_use():
    # the studies run `mixma train` in subprocesses: a stale key would only fail hours into a study
    methods = _experiment("mama_noisy_captions").METHODS
    for overrides in methods.values():
        resolved = [o.format(oracle="bench-oracle", bench="bench") for o in overrides]
        load_config(MAMATrainConfig, ROOT / "configs/mama_synthetic.yaml", resolved)
    warm = load_config(MAMATrainConfig, ROOT / "configs/mama_synthetic.yaml", methods["InfoNCE + meta-weighting from step 90"])
    assert warm.loss.meta.start == 90 and warm.loss.contrastive.margin == 0.0 and warm.loss.weighting == "meta"

    malmm = load_config(MALMMTrainConfig, ROOT / "configs/malmm_synthetic.yaml")
    assert not malmm.model.train_vision and malmm.model.train_llm  # the recipe experiments/README.md measures
    assert 0 < malmm.model.memory_bank_length < malmm.data.num_frames  # so compression runs, as the file says


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.train_strategy=mixd"], "config.data.train_strategy: must be one of 'uniform', 'segment', 'mixed', got 'mixd'"),
        (["data.mixed.mode=strobo"], "config.data.mixed.mode: must be one of"),
        (["data.mixed.stepp=1"], "config.data.mixed: unknown key(s) stepp"),
        (["data.dataset=msrvt_qa"], "config.data: unknown dataset 'msrvt_qa'"),
        (["data.task=retrieval"], "config.data.task: must be one of 'qa', 'classification', 'captioning', got 'retrieval'"),
        (["run.amp=fp32"], "config.run.amp: must be one of 'no', 'bf16', 'fp16'"),
    ],
)
def test_choices_fail_when_the_config_is_read(overrides, message):
    """A typo fails at load time, naming the key, not later inside a DataLoader worker."""
    with pytest.raises(ConfigError) as info:
        load_config(MALMMTrainConfig, None, overrides)
    assert message in str(info.value)


def test_nested_library_options_are_the_library_dataclasses():
    cfg = load_config(MAMATrainConfig, None, ["loss.contrastive.margin=0.2", "model.encoder.temporal=transformer",
                                               "loss.meta.method=direct", "loss.meta.normalize=mean"])
    from mixma.losses.contrastive import AngularMarginConfig
    from mixma.models.dual_encoder import DualEncoderOptions

    assert cfg.loss.contrastive == AngularMarginConfig(margin=0.2)
    assert cfg.model.encoder == DualEncoderOptions(temporal="transformer")
    with pytest.raises(ConfigError, match="config.loss.meta: method 'direct' needs normalize='mean'"):
        load_config(MAMATrainConfig, None, ["loss.meta.method=direct"])
    with pytest.raises(ConfigError, match="config.data.task: must be one of .retrieval., .qa., .multiple_choice., got .captioning."):
        load_config(MAMATrainConfig, None, ["data.task=captioning"])


def test_yaml_booleans_read_as_the_choice_they_spell():
    assert load_config(MALMMTrainConfig, None, ["run.amp=no"]).run.amp == "no"  # YAML 1.1 reads no as false


def test_quoted_override_values():
    cfg = load_config(MALMMTrainConfig, None, ["data.prompts.qa='Q: {question} A:'", 'run.output_dir="runs/a b"'])
    assert cfg.data.prompts.qa == "Q: {question} A:" and cfg.run.output_dir == "runs/a b"
    with pytest.raises(ConfigError, match="override data.root: .* not a valid value"):
        load_config(MALMMTrainConfig, None, ["data.root={unclosed"])


def test_every_study_override_loads_strictly_on_its_config():
    """The studies run `mixma train` in subprocesses: a stale key would only fail hours into one."""
    sampling = _experiment("malmm_sampling")
    for study, (config, variants, extra) in sampling.STUDIES.items():
        for train, evaluate, memory, mode in variants.values():
            overrides = [f"data.train_strategy={train}", f"data.eval_strategy={evaluate}", *extra,
                         f"model.memory_bank_length={4 if memory else 0}", *([f"data.mixed.mode={mode}"] if mode else [])]
            load_config(MALMMTrainConfig, ROOT / config, overrides)
    ablations = _experiment("malmm_ablations")
    for _, overrides in ablations.ROWS.values():
        cfg = load_config(MALMMTrainConfig, ROOT / "configs/malmm_pretrained.yaml", ["data.num_frames=16", *overrides])
        assert cfg.data.cache_features and cfg.model.small.vision == "efficientnet-lite0"
    for overrides in _experiment("mama_noisy_captions").METHODS.values():
        resolved = [o.format(oracle="bench-oracle", bench="bench") for o in overrides]
        load_config(MAMATrainConfig, ROOT / "configs/mama_pretrained.yaml", resolved)
