"""PreparedDataset: per-replica batches, every image once per epoch, sharding, resume skips, checks."""
import json
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from cli_processes import spawn_script
from conftest import REPO
from prepared_datasets import ListSource
from progan_tf.data import prepare
from progan_tf.data.pipeline import PreparedDataset, open_dataset

NUM_IMAGES = 24


def _image(i):
    """8x8 image whose left half is 5*i and right half 255-5*i (left < right): every level keeps both."""
    image = np.empty((8, 8, 3), np.uint8)
    image[:, :4], image[:, 4:] = 5 * i, 255 - 5 * i
    return image


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "ids"
    prepare.prepare_dataset(ListSource([_image(i) for i in range(NUM_IMAGES)]), str(path), shards=3, workers=1,
                             progress=False)
    return str(path)


def _ids(batch):
    """Image ids of a float batch [B, R, R, C] in [-1, 1], and whether each was mirrored."""
    pixels = np.round((np.asarray(batch) + 1.0) * 127.5).astype(int)
    left, right = pixels[:, 0, 0, 0], pixels[:, 0, -1, 0]
    mirrored = left > right
    return np.minimum(left, right) // 5, mirrored


def _take(ds, count):
    return [b for b in ds.take(count).as_numpy_iterator()]


@pytest.mark.parametrize("cache_mb", [256, 0], ids=["cached", "streamed"])
def test_batches_are_shaped_and_cover_every_image_once_per_epoch(data_dir, cache_mb):
    source = PreparedDataset(data_dir, cache_mb=cache_mb)
    assert source.is_cached(8) == bool(cache_mb)
    assert (source.num_images, source.max_resolution, source.num_channels) == (NUM_IMAGES, 8, 3)
    for resolution in (4, 8):
        batches = _take(source.batches(resolution, 4, mirror=True, seed=1), 2 * NUM_IMAGES // 4)
        assert all(b.shape == (4, resolution, resolution, 3) and b.dtype == np.float32 for b in batches)
        assert all(b.min() >= -1.0 and b.max() <= 1.0 for b in batches)
        ids, mirrored = zip(*map(_ids, batches))
        half = NUM_IMAGES // 4
        for epoch in (ids[:half], ids[half:]):
            assert sorted(np.concatenate(epoch).tolist()) == list(range(NUM_IMAGES))
        assert 0 < np.concatenate(mirrored).mean() < 1
        assert np.concatenate(ids[:half]).tolist() != list(range(NUM_IMAGES))  # shuffled
    unmirrored = _take(source.batches(8, 4, seed=1), NUM_IMAGES // 4)
    assert not np.concatenate([_ids(b)[1] for b in unmirrored]).any()


@pytest.mark.parametrize("cache_mb", [256, 0], ids=["cached", "streamed"])
def test_skip_batches_resumes_the_same_stream(data_dir, cache_mb):
    source = PreparedDataset(data_dir, cache_mb=cache_mb)
    full = _take(source.batches(8, 4, mirror=True, seed=7), 14)
    resumed = _take(source.batches(8, 4, mirror=True, seed=7, skip_batches=7), 7)  # crosses an epoch edge
    for a, b in zip(full[7:], resumed):
        np.testing.assert_array_equal(a, b)
    again = _take(source.batches(8, 4, mirror=True, seed=7), 14)
    np.testing.assert_array_equal(np.stack(full), np.stack(again))


@pytest.mark.parametrize("cache_mb,shards", [(256, 3), (0, 3), (0, 1)], ids=["cached", "by_file", "by_record"])
def test_input_pipelines_split_each_epoch(tmp_path, data_dir, cache_mb, shards):
    if shards != 3:
        data_dir = str(tmp_path / "one_shard")
        prepare.prepare_dataset(ListSource([_image(i) for i in range(NUM_IMAGES)]), data_dir, shards=1,
                                 workers=1, progress=False)
    source = PreparedDataset(data_dir, cache_mb=cache_mb)
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        per_epoch = {(256, 3): 12, (0, 3): 16 - 8 * pipeline, (0, 1): 12}[(cache_mb, shards)] // 2
        seen.append(np.concatenate([_ids(b)[0] for b in _take(source.batches(8, 2, context, seed=3), per_epoch)]))
    assert sorted(np.concatenate(seen).tolist()) == list(range(NUM_IMAGES))


def test_mismatches_are_clear_errors(data_dir, tmp_path):
    with pytest.raises(ValueError, match=r"has 3 channel\(s\) but num_channels=1: use num_channels=3"):
        open_dataset(data_dir, num_channels=1)
    with pytest.raises(ValueError, match="not 16x16: train with resolution=8 or prepare it again with "
                                         "max_resolution=16$"):
        open_dataset(data_dir, max_resolution=16)
    with pytest.raises(ValueError, match="not 32x32"):
        open_dataset(data_dir).batches(32, 4)
    with pytest.raises(ValueError, match="not a prepared dataset"):
        open_dataset(str(tmp_path))
    assert open_dataset(data_dir, num_channels=3, max_resolution=8).name == "ids"


STRATEGY_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from progan_tf.data.pipeline import PreparedDataset
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {}
    for cache_mb in (256, 0):
        source = PreparedDataset(sys.argv[1], cache_mb=cache_mb)
        dist = strategy.distribute_datasets_from_function(
            lambda context: source.batches(8, 3, context, mirror=False, seed=0))
        steps, it = [], iter(dist)
        for _ in range(2 * 24 // 6):  # two epochs of global batch 6
            parts = strategy.experimental_local_results(next(it))
            steps.append([[list(p.shape), np.round((p.numpy()[:, 0, 0, 0] + 1) * 127.5 / 5).astype(int).tolist()]
                          for p in parts])
        result[str(cache_mb)] = {"replicas": strategy.num_replicas_in_sync, "steps": steps}
    print("RESULT" + json.dumps(result))
""")


def test_two_replica_mirrored_strategy_gets_per_replica_batches(data_dir):
    proc = spawn_script(STRATEGY_SCRIPT, [data_dir], REPO)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.split("RESULT", 1)[1])
    for mode in ("256", "0"):
        assert result[mode]["replicas"] == 2
        steps = result[mode]["steps"]
        assert all(len(step) == 2 and all(shape == [3, 8, 8, 3] for shape, _ in step) for step in steps)
        ids = [i for step in steps for _, replica_ids in step for i in replica_ids]
        assert sorted(ids[:NUM_IMAGES]) == list(range(NUM_IMAGES)), mode  # epoch 1: each image once
        assert sorted(ids[NUM_IMAGES:]) == list(range(NUM_IMAGES)), mode  # epoch 2


@pytest.mark.parametrize("cache_mb", [256, 0], ids=["cached", "streamed"])
def test_training_pipelines_run_without_autotuning(data_dir, cache_mb):
    # tf.data's autotuning thread sleeps up to a minute between optimisations, and deleting an iterator
    # waits for it: the trainer sat idle for up to 40 s at phase switches and at the end of a run.
    batches = PreparedDataset(data_dir, cache_mb=cache_mb).batches(8, 4, mirror=True)
    assert batches.options().autotune.enabled is False
    from progan_tf.data.pipeline import ArrayDataset
    assert ArrayDataset(np.zeros((8, 8, 8, 3), np.uint8)).batches(8, 4).options().autotune.enabled is False
