import pytest

from mimstudy.config import ConfigError, EvaluateConfig, PaperProbeConfig, PretrainConfig, ProbeConfig


def test_defaults_validate():
    PretrainConfig().validate()
    ProbeConfig().validate()


@pytest.mark.parametrize("params,match", [
    ({"mask_ratio": 1.0}, r"mask_ratio must lie in \(0, 1\)"),
    ({"mask_ratio": 0.0}, r"mask_ratio"),
    ({"objective": "byol"}, "objective must be one of"),
    ({"arch": "vit_huge_32"}, "unknown backbone"),
    ({"epochs": 0}, "epochs"),
    ({"warmup_epochs": 1, "epochs": 1}, "warmup_epochs"),
    ({"train_size": 10, "batch_size": 64}, "at least one batch"),
    ({"run_id": "a/b"}, "run_id"),
])
def test_bad_pretrain_parameters(params, match):
    with pytest.raises(ConfigError, match=match):
        PretrainConfig.from_dict(params)


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown parameter.*'learning_rate'.*valid"):
        PretrainConfig.from_dict({"learning_rate": 0.1})


def test_from_namespace_ignores_other_globals():
    config = ProbeConfig.from_namespace({"num_images": 5, "plt": object(), "run_id": "x"})
    assert config.num_images == 5 and config.run_id == "x"


def test_new_parameters_at_their_defaults_keep_old_results_current():
    config = PretrainConfig(lr=0.01)
    stored = config.to_dict()
    assert config.differences(stored) == []
    older = {k: v for k, v in stored.items() if k != "layer_decay"}  # made before layer_decay existed
    assert config.differences(older) == []
    assert PretrainConfig(lr=0.01, layer_decay=0.5).differences(older) == ["layer_decay"]
    assert config.differences({**stored, "removed_option": 1}) == ["removed_option"]
    assert config.differences({**stored, "lr": 0.02}) == ["lr"]
    assert config.differences({**stored, "resume": False}, ignore={"resume"}) == []


@pytest.mark.parametrize("config_cls", [PretrainConfig, EvaluateConfig, ProbeConfig, PaperProbeConfig])
def test_device_is_auto_or_a_torch_device(config_cls):
    for device in ("auto", "cpu", "cuda", "cuda:1"):  # naming a GPU needs no GPU until the run starts
        config_cls.from_dict({"device": device})
    with pytest.raises(ConfigError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:<n>', got 'gpu0'"):
        config_cls.from_dict({"device": "gpu0"})


def test_probe_of_a_random_init_arch_reads_no_checkpoint():
    from mimstudy.config import ProbeConfig

    assert ProbeConfig(run_id="vit_sup").required_runs() == ["vit_sup"]
    control = ProbeConfig.from_dict({"run_id": "vit_random", "arch": "vit_micro_32"})
    assert control.required_runs() == []
    with pytest.raises(ConfigError, match="arch .the random-init backbone"):
        ProbeConfig.from_dict({"run_id": "vit_random", "arch": "vit_nope"})
