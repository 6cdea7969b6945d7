"""progan-prepare's library (data/prepare.py): bad files skipped and listed, the preflight, shuffling and
shards, duplicates and files that change meanwhile."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from prepared_datasets import ListSource, assert_exact_pyramid, prepare
from progan_tf.data import sources, tfrecord
from progan_tf.errors import ConfigError


def _png_bytes(image, **save):
    buffer = io.BytesIO()
    image.save(buffer, **save)
    return buffer.getvalue()


def test_folder_with_bad_files_skips_and_lists_exactly_them(tmp_path, capfd):
    rng = np.random.default_rng(1)
    root = tmp_path / "images"
    for sub in ("a", "b", "bad"):
        (root / sub).mkdir(parents=True)
    rgb = rng.integers(0, 256, (16, 16, 3), np.uint8)
    gray = rng.integers(0, 256, (16, 16), np.uint8)
    rgba = rng.integers(0, 256, (16, 16, 4), np.uint8)
    gray16 = rng.integers(0, 65536, (16, 16), np.uint16)
    palette = Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).quantize(8)
    photo = rng.integers(0, 256, (16, 24, 3), np.uint8)  # H=16, W=24 JPEG: centre-cropped
    Image.fromarray(rgb).save(root / "a" / "rgb.png")
    Image.fromarray(gray, "L").save(root / "a" / "gray.png")
    Image.fromarray(rgba, "RGBA").save(root / "a" / "rgba.png")
    Image.fromarray(gray16).save(root / "b" / "gray16.png")  # mode I;16, a 16-bit PNG
    palette.save(root / "b" / "palette.png")
    Image.fromarray(rgb).save(root / "b" / "photo.bmp")
    Image.fromarray(photo).save(root / "b" / "photo.jpg", quality=90)
    Image.fromarray(rgb).save(root / "b" / "photo.webp", lossless=True)
    good = _png_bytes(Image.fromarray(rgb), format="PNG")
    (root / "bad" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 200, np.uint8)))
    (root / "bad" / "truncated.png").write_bytes(good[:len(good) // 2])
    (root / "bad" / "empty.jpg").write_bytes(b"")
    jpeg = _png_bytes(Image.fromarray(rgb), format="JPEG")
    (root / "bad" / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    Image.fromarray(rgb[:8, :8]).save(root / "small.png")  # below 16x16, no --allow_upscale
    (root / "notes.txt").write_text("not an image: ignored, not counted")

    source = sources.FolderSource(str(root))
    assert len(source) == 13 and source.label_names == ["a", "b", "bad"]
    manifest = prepare(source, tmp_path / "d", max_resolution=16, workers=2, keep_labels=True, progress=True)

    bad = {"bad/corrupt.png", "bad/truncated.png", "bad/empty.jpg", "bad/truncated.jpg", "small.png"}
    assert {s["item"] for s in manifest["skipped"]} == bad
    assert manifest["num_skipped"] == 5 and manifest["num_images"] == 8
    reason = next(s["reason"] for s in manifest["skipped"] if s["item"] == "small.png")
    assert reason == "8x8 is smaller than 16x16 (allow_upscale enlarges it)"  # the option, not a CLI flag
    stderr = capfd.readouterr().err
    assert all(f"skipped {name}:" in stderr for name in bad)

    with Image.open(root / "b" / "photo.jpg") as f:
        photo_decoded = np.asarray(f.convert("RGB"))[:, 4:20]
    expected = np.stack([
        np.repeat(gray[..., None], 3, axis=2),  # a/gray.png
        rgb,  # a/rgb.png
        ((rgba[..., :3].astype(np.uint32) * rgba[..., 3:] + 127) // 255).astype(np.uint8),  # a/rgba.png over black
        np.repeat(np.round(gray16 / 257.0).astype(np.uint8)[..., None], 3, axis=2),  # b/gray16.png
        np.asarray(palette.convert("RGB")),  # b/palette.png
        rgb,  # b/photo.bmp
        photo_decoded,  # b/photo.jpg
        rgb,  # b/photo.webp
    ])
    _, labels = tfrecord.read_level(str(tmp_path / "d"), 16, labels=True)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert_exact_pyramid(tmp_path / "d", expected)


def test_preflight_fails_fast_on_small_or_unreadable_sources(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(folder / f"{i}.png")
    source = sources.FolderSource(str(folder))
    with pytest.raises(sources.SourceError, match=r"8x8 or smaller, below max_resolution=16; lower it \(to 8\) "
                                                  r"or pass allow_upscale$") as error:
        prepare(source, tmp_path / "d", max_resolution=16)
    assert error.value.message(lambda field: f"--{field}").endswith("below --max_resolution=16; lower it (to 8) or "
                                                                      "pass --allow_upscale")  # as the CLI says it
    assert not os.path.exists(tmp_path / "d")
    assert prepare(source, tmp_path / "d", max_resolution=16, allow_upscale=True)["num_images"] == 3
    assert prepare(source, tmp_path / "e")["max_resolution"] == 8  # inferred
    with pytest.raises(ConfigError, match="already exists; pass overwrite to replace it$") as error:
        prepare(source, tmp_path / "d")
    assert error.value.message(lambda field: f"--{field}").endswith("pass --overwrite to replace it")
    assert prepare(source, tmp_path / "d", overwrite=True)["max_resolution"] == 8
    (tmp_path / "empty").mkdir()
    with pytest.raises(sources.SourceError, match="holds no png/jpg/jpeg/webp/bmp files"):
        sources.open_image_source(str(tmp_path / "empty"))
    with pytest.raises(sources.SourceError, match=r"^source=\S+missing does not exist"):
        sources.open_image_source(str(tmp_path / "missing"))


def test_shuffled_order_is_a_seeded_permutation_and_shards_follow_the_flags(tmp_path):
    images = [np.full((4, 4, 1), 10 * i, np.uint8) for i in range(10)]
    manifest = prepare(ListSource(images), tmp_path / "a", shuffle=True, seed=5, images_per_shard=3)
    order = tfrecord.read_level(str(tmp_path / "a"), 4)[:, 0, 0, 0] // 10
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    assert [s["num_images"] for s in manifest["levels"]["4"]] == [3, 3, 2, 2]
    prepare(ListSource(images), tmp_path / "b", shuffle=True, seed=5)
    np.testing.assert_array_equal(tfrecord.read_level(str(tmp_path / "b"), 4)[:, 0, 0, 0] // 10, order)


def test_one_image_duplicates_links_mixed_sizes_and_files_changing_meanwhile(tmp_path):
    rng = np.random.default_rng(7)
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), np.uint8)).save(one / "only.png")
    assert prepare(sources.FolderSource(str(one)), tmp_path / "d1", max_resolution=16)["num_images"] == 1

    root = tmp_path / "many"
    root.mkdir()
    pictures = [rng.integers(0, 256, (h, w, 3), np.uint8) for h, w in ((16, 16), (40, 24), (64, 64), (17, 33))]
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(root / f"{i}.png")
    (root / "copy.png").write_bytes((root / "0.png").read_bytes())  # the same file twice
    os.symlink(root / "2.png", root / "link.png")  # and once through a link
    Image.fromarray(pictures[1]).save(root / "vanishes.png")
    Image.fromarray(pictures[2]).save(root / "shrinks.png")
    source = sources.FolderSource(str(root))  # the listing is taken here ...
    os.remove(root / "vanishes.png")  # ... and then the folder changes under the job
    with open(root / "shrinks.png", "r+b") as f:
        f.truncate(40)
    manifest = prepare(source, tmp_path / "d2", max_resolution=16)
    assert {s["item"] for s in manifest["skipped"]} == {"vanishes.png", "shrinks.png"}
    assert manifest["num_images"] == 6  # mixed sizes are squared and resized, duplicates kept
    assert sorted((d["item"], d["same_as"]) for d in manifest["duplicates"]) == [("copy.png", "0.png"),
                                                                                ("link.png", "2.png")]
    assert manifest["num_duplicates"] == 2
