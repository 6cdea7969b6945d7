"""The flags of a training configuration, for progan-train and progan-bench (which accepts the
same flagfiles): data and devices, then the fields of NetworkConfig, Schedule and TrainConfig,
and the one function that turns them into the three configs."""
import os

from progan_tf import runs
from progan_tf.cli import common
from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule
from progan_tf.training.config import TrainConfig

_SCHEDULE_HELP = common.attribute_help(Schedule)
_SCHEDULE_FLAGS = ("batch_sizes", "learning_rates", "total_kimg")  # defined below, not as plain fields

common.define("Data and devices", "string", "data_dir", "",
              "Prepared dataset (progan-prepare); empty = the embedded synthetic shapes.")
common.define("Data and devices", "integer", "synthetic_images", 4096,
              "Number of embedded synthetic images when --data_dir is empty.")
common.define("Data and devices", "list", "devices", [],
              "Devices for MirroredStrategy, e.g. GPU:0,GPU:1 (default: every GPU, or the CPU).")
common.define("Data and devices", "integer", "cpu_devices", 0,
              "Split the CPU into this many logical devices (to try multi-device runs).")
common.define("Data and devices", "boolean", "deterministic", False,
              "Bit-exact reruns and resumes: TensorFlow op determinism and one op at a time (about 20 % slower).")
common.define("Data and devices", "float", "stop_at_kimg", 0,
              "Stop with a checkpoint at this many kimg (0 = train to the end); run again to continue.")
common.define("Data and devices", "boolean", "dry_run", False, "Validate the options, print them as JSON and exit.")
common.define_config_flags(NetworkConfig, "Network")
common.define("Network", "boolean", "nombstd", False, "Ablation: no minibatch-stddev layer (= --mbstd_group_size=0).")
common.define_config_flags(Schedule, "Schedule", skip=("max_resolution",) + _SCHEDULE_FLAGS)
common.define("Schedule", "string", "batch_sizes", "4:128,8:128,16:128,32:64,64:32,128:16,256:8,512:4,1024:4",
              "Global minibatch per resolution, 'res:batch,...': " + _SCHEDULE_HELP["batch_sizes"])
common.define("Schedule", "string", "learning_rates", "1024:0.0015",
              "Per-resolution learning rates, 'res:lr,...': " + _SCHEDULE_HELP["learning_rates"])
common.define("Schedule", "float", "total_kimg", 12000, _SCHEDULE_HELP["total_kimg"].replace("None", "0"))
common.define_config_flags(TrainConfig, "Training")


def options_from_flags(f, keep_run_network=False):
    """Turn flags into (NetworkConfig, Schedule, TrainConfig), validating every value.

    With `keep_run_network` (progan-train), a run being resumed keeps the network fields of its config.json that no flag
    gives (`kept_network_values`), and says so. A bad value raises UsageError or ConfigError, one line naming the flag.
    """
    common.check_at_least(f, 0, "stop_at_kimg", "cpu_devices")
    common.check_at_least(f, 1, "synthetic_images")
    if f.nombstd and f["mbstd_group_size"].present and f.mbstd_group_size:
        raise common.UsageError("--nombstd contradicts --mbstd_group_size; give one of them")
    values = {**common.config_values(NetworkConfig, f), "mbstd_group_size": 0 if f.nombstd else f.mbstd_group_size}
    kept = kept_network_values(f, values) if keep_run_network else {}
    if kept:
        print(f"resuming {f.run_dir} with its own {', '.join(f'{k}={v}' for k, v in sorted(kept.items()))} "
              f"(network flags not given keep the run's values)")
    network = NetworkConfig(**{**values, **kept})
    schedule = Schedule(max_resolution=f.resolution, total_kimg=f.total_kimg or None,
                        batch_sizes=common.parse_int_map("batch_sizes", f.batch_sizes),
                        learning_rates=common.parse_int_map("learning_rates", f.learning_rates, float),
                        **common.config_values(Schedule, f, skip=("max_resolution",) + _SCHEDULE_FLAGS))
    schedule.phases()  # checks total_kimg against the phases
    return network, schedule, TrainConfig(**common.config_values(TrainConfig, f))


def kept_network_values(f, values):
    """{field: value} of the network fields a resumed run keeps from its config.json: those no flag gives.

    So a run started under other defaults (the unfused networks before 0.1's fused ones, say) resumes with the networks
    its checkpoints hold, and a flag given explicitly still has to match them.
    """
    path = os.path.join(f.run_dir, runs.CONFIG_FILE)
    try:
        saved = runs.read_json(path)["network"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # a new run, or a config.json the trainer will refuse with its own message
    given = {name for name in values if f[name].present} | ({"mbstd_group_size"} if f["nombstd"].present else set())
    return {name: saved[name] for name in values if name not in given and name in saved and saved[name] != values[name]}
