"""The emoji source: Debian's Noto Color Emoji as real drawings, split by base emoji."""
import os

import numpy as np
import pytest

from progan_tf.data import emoji
from progan_tf.data.sources import SourceError, open_image_source

needs_font = pytest.mark.skipif(not os.path.isfile(emoji.DEFAULT_FONT),
                                reason="needs Debian's fonts-noto-color-emoji (.ci/run installs it)")


@needs_font
def test_the_font_gives_over_2000_distinct_drawings_split_by_base_emoji():
    every, train, test = (emoji.EmojiSource(split=s) for s in emoji.SPLITS)
    assert len(every) >= 2000 and len(train) + len(test) == len(every)
    assert set(train.sequences) | set(test.sequences) == set(every.sequences)
    assert not {s[0] for s in train.sequences} & {s[0] for s in test.sequences}  # variants stay together
    assert 0.15 < len(test) / len(every) < 0.25
    assert sum(len(s) == 2 and "\U0001F3FB" <= s[1] <= "\U0001F3FF" for s in every.sequences) >= 500  # skin tones
    assert sum(len(s) == 2 and s[0] >= "\U0001F1E6" and s[0] <= "\U0001F1FF" for s in every.sequences) >= 200  # flags
    images = [test.load(i)[0] for i in range(0, len(test), 50)]
    assert all(image.shape == (136, 136, 3) and image.dtype == np.uint8 and image.max() > 0 for image in images)
    digests = {image.tobytes() for image in images}
    assert len(digests) == len(images)
    np.testing.assert_array_equal(test.load(3)[0], emoji.EmojiSource(split="test").load(3)[0])
    assert test.item_name(0).startswith("U+")


def test_spec_forms_and_errors(tmp_path):
    assert emoji.parse_spec("") == (emoji.DEFAULT_FONT, "all")
    assert emoji.parse_spec("test") == (emoji.DEFAULT_FONT, "test")
    assert emoji.parse_spec("/fonts/e.ttf:train") == ("/fonts/e.ttf", "train")
    assert emoji.parse_spec("/fonts/e.ttf") == ("/fonts/e.ttf", "all")
    with pytest.raises(SourceError, match="apt-get install fonts-noto-color-emoji"):
        open_image_source(f"emoji:{tmp_path / 'missing.ttf'}:train")
    with pytest.raises(SourceError, match="split 'dev' is unknown"):
        emoji.EmojiSource(split="dev")
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    with pytest.raises(SourceError, match="cannot be read"):
        emoji.EmojiSource(str(tmp_path / "broken.ttf"))
