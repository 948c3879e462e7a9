"""Config: defaults, presets, overrides, one-line errors naming the key, TOML round trips."""

import argparse
import dataclasses

import pytest

from jwarp import config as cfg
from jwarp import config_args
from jwarp.config import Config, ConfigError, load_config, save_config
from jwarp.execution import ExecutionConfig

# paper_mnist needs the data_dir that its header says to give on the command line.
# The presets for the real data sets need the data_dir their headers say to give.
PRESET_OVERRIDES = {
    "paper_mnist": {"data.data_dir": "/data/mnist"},
    "mnist_gan": {"data.data_dir": "/data/mnist"},
    "smiles_gan": {"data.data_dir": "/data/SMILEsmileD"},
    "paper_smiles": {"data.data_dir": "/data/SMILEsmileD"},
    "fei_l2": {"data.data_dir": "/data/FEI"},
}


def _error(preset=None, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(preset, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def _parse(*argv):
    parser = config_args.add_config_args(argparse.ArgumentParser())
    return config_args.config_from_args(parser.parse_args(list(argv)))


def test_defaults_load_and_equal_the_dataclass_defaults():
    assert load_config() == Config()


def test_presets_exist():
    assert {
        "smoke", "faces_l2", "faces_gan", "digits_gan", "paper_mnist", "paper_faces",
        "smiles_gan", "mnist_gan", "paper_smiles", "fei_l2",
    } <= set(cfg.list_presets())


@pytest.mark.parametrize("name", cfg.list_presets())
def test_every_preset_loads_and_round_trips(name, tmp_path):
    config = load_config(name, PRESET_OVERRIDES.get(name))
    path = tmp_path / "config.toml"
    cfg.save_config(config, path)
    assert load_config(path) == config
    assert cfg.config_from_dict(cfg.config_to_dict(config)) == config


@pytest.mark.parametrize("name", cfg.list_presets())
def test_every_preset_starts_with_a_header_giving_the_command(name):
    lines = cfg.resolve_preset(name).read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert header, f"{name}: no leading comment block"
    assert "python train.py" in "\n".join(header)


def test_presets_only_override_known_fields_and_change_something():
    # A preset equal to the defaults would be a mistake (or dead).
    for name in cfg.list_presets():
        assert load_config(name, PRESET_OVERRIDES.get(name)) != Config(), name


def test_preset_values_match_spec():
    mnist = load_config("paper_mnist", PRESET_OVERRIDES["paper_mnist"])
    assert mnist.model.unet.encoder == (64, 128, 256, 512)
    assert mnist.model.unet.decoder == (1024, 512, 256, 128)
    assert mnist.model.critic.channels == (64, 128, 256)
    assert (mnist.flow.field, mnist.flow.solver, mnist.flow.step_size) == ("neural", "euler", 0.05)
    assert (mnist.loss.mode, mnist.loss.n_critic, mnist.train.batch_size) == ("gan", 10, 64)
    assert (mnist.data.image_size, mnist.data.channels, mnist.data.paired) == (32, 1, False)
    # The authors' published commands decay both rates by 0.95 every 100 epochs.
    faces = load_config("paper_faces")
    for preset in (mnist, faces):
        assert (preset.optim.decay_rate, preset.optim.decay_every) == (0.95, 100)
    smoke = load_config("smoke")
    assert smoke.model.unet.extra == (8,)
    assert (smoke.train.steps, smoke.flow.step_size) == (2, 0.25)


@pytest.mark.parametrize("name", ["paper_mnist", "mnist_gan", "smiles_gan", "paper_smiles"])
def test_real_data_presets_without_data_dir_name_data_dir(name):
    message = _error(name)
    assert message.startswith("data.data_dir:")
    if "smiles" in name:
        assert "SMILEsmileD" in message and "git clone" in message
    else:
        assert "IDX" in message


def test_overrides_win_over_preset():
    config = load_config(
        "faces_l2",
        {"train.steps": 5, "model.unet.encoder": [8, 8], "model.unet.decoder": [8, 8]},
    )
    assert config.train.steps == 5
    assert config.model.unet.encoder == (8, 8)
    assert config.model.unet.extra == (16, 16)  # from the preset
    assert config.optim.lr == 1e-3  # from the preset


def test_table_override_merges_into_the_table():
    config = load_config(None, {"train": {"steps": 7}})
    assert config.train.steps == 7
    assert config.train.batch_size == cfg.TrainConfig().batch_size


def test_unknown_override_key_is_named_with_the_known_keys():
    message = _error(None, {"train.stepz": 5})
    assert "'train.stepz'" in message
    assert "batch_size" in message and "steps" in message
    assert "'trian.steps'" in _error(None, {"trian.steps": 5})
    assert "'train.steps.x'" in _error(None, {"train.steps.x": 5})


def test_unknown_key_in_preset_file_names_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nsteps = 3\n\n[model.unet]\nencodr = [8]\n")
    message = _error(path)
    assert "bad.toml" in message
    assert "'model.unet.encodr'" in message


def test_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[train]\nsteps = 3\nbatch_size = = 4\n")
    message = _error(path)
    assert "broken.toml" in message and "line 3" in message


@pytest.mark.parametrize(
    "key, value",
    [
        ("train.steps", "ten"),
        ("train.steps", 1.5),
        ("train.steps", 10.0),  # an integral float is still not an integer
        ("train.steps", True),
        ("model.unet.encoder", ["a", "b"]),
        ("model.unet.encoder", [8, True]),
        ("model.unet.encoder", 8),
        ("loss.w_rec", "0.1"),
        ("loss.w_rec", float("nan")),
        ("data.paired", 1),
        ("flow.solver", 3),
        ("model.unet", 3),
    ],
)
def test_wrong_types_are_one_line_errors_naming_the_key(key, value):
    assert _error(None, {key: value}).startswith(f"{key}:")


def test_int_is_accepted_for_float_and_converted():
    config = load_config(None, {"loss.w_jd": 2, "flow.step_size": 1})
    assert config.loss.w_jd == 2.0 and isinstance(config.loss.w_jd, float)
    assert isinstance(config.flow.step_size, float)


@pytest.mark.parametrize(
    "key, value",
    [
        ("flow.step_size", -0.1),
        ("flow.rtol", 0.0),
        ("train.steps", -3),
        ("train.batch_size", 0),
        ("data.channels", 2),
        ("data.image_size", 4),
        ("data.name", "cifar"),
        ("loss.n_critic", 0),
        ("loss.critic_fakes", "stale"),
        ("loss.mode", "wgan"),
        ("loss.gan", "hinge"),
        ("loss.w_rec", -1.0),
        ("optim.lr", 0.0),
        ("optim.b1", 1.0),
        ("optim.decay_rate", 1.5),
        ("optim.decay_every", 0),
        ("optim.clip_norm", -1.0),
        ("train.max_to_keep", 0),
        ("model.condition", "target"),
        ("model.unet.encoder", []),
        ("model.unet.extra", [8, 0]),
        ("model.unet.norm", "batch"),  # UNetConfig's own check, re-raised
        ("model.critic.norm", "batch"),  # CriticConfig's own check, re-raised
        ("execution.critic_conv", "cuda"),  # ExecutionConfig's own check, re-raised
        ("execution.max_unrolled_steps", -1),
        ("model.unet.out_sigma", -1.0),
        ("data.source_class", 10),
        ("data.target_class", -1),
        ("loss.w_area", -0.5),
        ("loss.area_band", 1.0),
        ("flow.solver", "midpoint"),  # SolverConfig's own check, re-raised
    ],
)
def test_out_of_range_values_are_one_line_errors_naming_the_key(key, value):
    assert _error(None, {key: value}).startswith(f"{key}:")


def test_out_of_range_message_gives_expectation_and_value():
    assert _error(None, {"train.steps": -3}) == (
        "train.steps: expected an integer in [1, 1000000000], got -3"
    )


def test_nested_dataclass_error_names_the_full_key():
    message = _error(None, {"model.unet.decoder": [8]})
    assert message.startswith("model.unet.decoder:")


def test_out_of_range_value_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "neg.toml"
    path.write_text("[flow]\nstep_size = -0.5\n")
    message = _error(path)
    assert "neg.toml" in message and "flow.step_size" in message


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"data.name": "digits"}, "data.paired"),  # paired defaults to true
        ({"data.name": "mnist", "data.paired": False, "data.data_dir": "/d"}, "loss.mode"),
        ({"data.name": "folder"}, "data.data_dir"),
        ({"data.name": "npy", "data.data_dir": ""}, "data.data_dir"),
        ({"data.paired": False}, "data.paired"),  # faces are always paired
        ({"model.condition": "pair", "loss.mode": "gan"}, "model.condition"),
        ({"data.source_class": 4}, "data.target_class"),
        ({"data.name": "smiles", "data.data_dir": "/d", "loss.mode": "gan"}, "data.paired"),
        ({"data.name": "smiles", "data.paired": False, "loss.mode": "gan"}, "data.data_dir"),
    ],
)
def test_cross_field_rules(overrides, key):
    assert _error(None, overrides).startswith(f"{key}:")


def test_cross_field_rules_accept_valid_combinations():
    load_config(None, {"model.condition": "pair"})
    load_config(
        None,
        {"data.name": "folder", "data.data_dir": "/d", "data.paired": False, "loss.mode": "gan"},
    )
    load_config(
        None,
        {"data.name": "mnist", "data.data_dir": "/d", "data.paired": False, "loss.mode": "gan"},
    )


@pytest.mark.parametrize(
    "item, expected",
    [
        ("train.steps=5", ("train.steps", 5)),
        ("loss.w_rec=0.1", ("loss.w_rec", 0.1)),
        ("optim.lr=1e-3", ("optim.lr", 1e-3)),
        ("data.paired=false", ("data.paired", False)),
        ("model.unet.encoder=[8,8]", ("model.unet.encoder", [8, 8])),
        ("flow.solver=heun", ("flow.solver", "heun")),
        ('flow.solver="rk4"', ("flow.solver", "rk4")),
        ("data.data_dir=/data/mnist", ("data.data_dir", "/data/mnist")),
        ("data.data_dir=a=b", ("data.data_dir", "a=b")),
        ("data.data_dir=", ("data.data_dir", "")),
        ("train.steps=5\nx = 1", ("train.steps", "5\nx = 1")),
    ],
)
def test_parse_set(item, expected):
    assert config_args.parse_set(item) == expected


@pytest.mark.parametrize("item", ["train.steps", "=5", ""])
def test_parse_set_rejects_missing_key_or_equals(item):
    with pytest.raises(ConfigError):
        config_args.parse_set(item)


def test_parse_set_values_load():
    overrides = dict(
        config_args.parse_set(s)
        for s in [
            "flow.solver=heun",
            "model.unet.encoder=[8,8]",
            "model.unet.decoder=[8, 8]",
            "loss.w_rec=0.1",
        ]
    )
    config = load_config(None, overrides)
    assert config.flow.solver == "heun"
    assert config.model.unet.encoder == (8, 8)
    assert config.loss.w_rec == 0.1


@pytest.mark.parametrize(
    "data, mode, preset",
    [
        ("faces", "l2", "faces_l2"),
        ("faces", "gan", "faces_gan"),
        ("digits", "gan", "digits_gan"),
        ("mnist", "gan", "mnist_gan"),
        ("smiles", "gan", "smiles_gan"),
        ("smiles", "l2", None),
        ("folder", "l2", None),
    ],
)
def test_default_preset(data, mode, preset):
    assert config_args.default_preset(data, mode) == preset


def test_config_from_args_without_flags_is_faces_l2():
    config, preset = _parse()
    assert preset == "faces_l2"
    assert config == load_config("faces_l2")


def test_config_from_args_picks_preset_from_data_and_mode():
    config, preset = _parse("--mode", "gan", "--data", "digits")
    assert preset == "digits_gan"
    assert config == load_config("digits_gan")


def test_config_from_args_without_matching_preset_uses_defaults_with_flags():
    config, preset = _parse("--mode", "gan", "--data", "folder", "--data-dir", "/d")
    assert preset == "defaults"
    assert (config.data.name, config.loss.mode, config.data.data_dir) == ("folder", "gan", "/d")
    assert config.train == cfg.TrainConfig()


@pytest.mark.parametrize("data, preset", [("mnist", "mnist_gan"), ("smiles", "smiles_gan")])
def test_real_data_flags_pick_their_presets_and_imply_unpaired(data, preset):
    config, chosen = _parse("--mode", "gan", "--data", data, "--data-dir", "/d")
    assert chosen == preset
    assert config == load_config(preset, {"data.data_dir": "/d"})
    assert config.data.paired is False


def test_flags_override_preset_and_set_overrides_flags():
    config, preset = _parse(
        "--config",
        "smoke",
        "--steps",
        "7",
        "--batch-size",
        "3",
        "--image-size",
        "24",
        "--field",
        "neural",
        "--seed",
        "4",
        "--mode",
        "gan",
        "--set",
        "train.steps=9",
        "--set",
        "flow.solver=heun",
    )
    assert preset == "smoke"
    assert config.train.steps == 9  # --set beats --steps
    assert (config.train.batch_size, config.data.image_size) == (3, 24)
    assert (config.flow.field, config.flow.solver, config.train.seed) == ("neural", "heun", 4)
    assert config.loss.mode == "gan"
    assert config.model.unet.encoder == (8, 8)  # from the preset


def test_config_flag_keeps_the_presets_mode_and_data():
    # --mode/--data default to l2/faces only for choosing a preset, not over --config's.
    config, _ = _parse("--config", "digits_gan")
    assert (config.data.name, config.loss.mode) == ("digits", "gan")


def test_config_from_args_takes_a_path(tmp_path):
    path = tmp_path / "run.toml"
    cfg.save_config(load_config("smoke", {"train.steps": 11}), path)
    config, preset = _parse("--config", str(path))
    assert config.train.steps == 11
    assert preset == str(path)


def test_config_from_args_errors_are_config_errors():
    with pytest.raises(ConfigError, match="loss.mode"):
        _parse("--data", "digits")  # digits are unpaired: L2 mode cannot work
    with pytest.raises(ConfigError, match="data.paired"):
        _parse("--data", "digits", "--mode", "gan", "--paired")
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        _parse("--config", "nope")


def test_resolve_preset():
    assert cfg.resolve_preset("smoke") == cfg.PRESETS_DIR / "smoke.toml"
    with pytest.raises(ConfigError, match="available: .*faces_l2"):
        cfg.resolve_preset("faces")
    with pytest.raises(ConfigError, match="not found"):
        cfg.resolve_preset("no/such/file.toml")


def test_save_config_is_atomic_and_round_trips(tmp_path):
    config = load_config(
        "smoke",
        {
            "optim.lr": 0.1 + 0.2,
            "loss.w_rec": 1e-7,
            "data.data_dir": 'we"ird\\pa\tth\x7f',
            "data.name": "folder",
            "flow.step_size": 1 / 3,
        },
    )
    path = tmp_path / "run" / "config.toml"
    cfg.save_config(config, path)
    cfg.save_config(config, path)  # overwriting is fine too
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]
    assert load_config(path) == config
    assert path.read_text().startswith("#")


def test_to_toml_lists_every_field():
    text = cfg.to_toml(Config())
    for section in (
        "[data]",
        "[model]",
        "[model.unet]",
        "[model.critic]",
        "[flow]",
        "[loss]",
        "[optim]",
        "[train]",
    ):
        assert section in text
    for field in dataclasses.fields(cfg.OptimConfig):
        assert f"\n{field.name} = " in text


def test_execution_settings_of_earlier_run_folders_are_read_in_their_new_place(tmp_path):
    """Run folders written before [execution] existed kept these keys in [flow] and [model.*]."""
    old = tmp_path / "config.toml"
    old.write_text(
        '[flow]\nfield = "neural"\nloop = "scan"\nremat_policy = "convs"\n'
        "max_unrolled_steps = 8\nremat = false\n"
        '[model.unet]\nconv_impl = "winograd"\n[model.critic]\nconv_impl = "im2col"\n'
    )
    config = load_config(old)
    assert config.flow.field == "neural"
    assert config.execution == ExecutionConfig(
        loop="scan",
        max_unrolled_steps=8,
        remat=False,
        remat_policy="convs",
        unet_conv="winograd",
        critic_conv="im2col",
    )
    assert load_config(None, {"flow.loop": "diffrax"}).execution.loop == "diffrax"
    # Saved again, they are written where they are now and read back equal.
    save_config(config, tmp_path / "new.toml")
    text = (tmp_path / "new.toml").read_text()
    assert "[execution]" in text and "conv_impl" not in text
    assert load_config(tmp_path / "new.toml") == config


def test_an_explicit_loop_that_the_solver_cannot_run_is_a_config_error():
    adaptive = {"flow.solver": "tsit5", "flow.adaptive": True}
    message = _error(None, {"execution.loop": "scan", **adaptive})
    assert message == "execution.loop: 'scan' needs fixed steps (adaptive = false)"
