"""Real drawings that install offline: every emoji a colour-emoji font draws.

Debian's fonts-noto-color-emoji (SIL Open Font License 1.1) ships Noto Color Emoji, whose glyphs are PNG drawings of
136x128 pixels. `EmojiSource` renders each single emoji, each skin-tone variant and each flag the font draws as one
picture (about 2,300 in version 2.042), and splits them into a fixed train and test set by base emoji, so that no
skin-tone variant of a test image is in the training set.
"""
import functools
import hashlib
import os

from PIL import Image, ImageDraw, ImageFont

from progan_tf.data.sources import IndexedSource, SourceError, to_array

DEFAULT_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
SPLITS = ("all", "train", "test")
TEST_EVERY = 5  # every 5th base emoji (in code point order) and its variants are the test split
_SIZE = 109  # the font's only bitmap strike
_CANVAS = 136
_RANGES = ((0x00A9, 0x00AE), (0x203C, 0x3299), (0x1F000, 0x1FAFF))
_SKIN_TONES = [chr(c) for c in range(0x1F3FB, 0x1F400)]
_FLAG_LETTERS = [chr(c) for c in range(0x1F1E6, 0x1F200)]


@functools.lru_cache(maxsize=None)
def _font(path):
    """The font at `path`, loaded once per process (workers included)."""
    return ImageFont.truetype(path, _SIZE)


def render(font_path, text):
    """One emoji sequence as uint8 RGB [136, 136, 3], drawn over black."""
    image = Image.new("RGBA", (_CANVAS, _CANVAS), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((0, (_CANVAS - 128) // 2), text, font=_font(font_path), embedded_color=True)
    return to_array(image)


def _candidates():
    singles = [chr(c) for lo, hi in _RANGES for c in range(lo, hi + 1)
               if not lo <= c - 0x1F3FB < 5 and chr(c) not in _FLAG_LETTERS]
    flags = [a + b for a in _FLAG_LETTERS for b in _FLAG_LETTERS]
    return singles, flags


@functools.lru_cache(maxsize=4)
def find_emoji(font_path):
    """The sequences the font draws as one distinct, non-empty picture, in code point order."""
    font = _font(font_path)
    advance = font.getlength("\U0001F600")
    singles, flags = _candidates()
    found, seen = [], set()

    def keep(text):
        if font.getlength(text) != advance:  # not one glyph: the font has no ligature for it
            return False
        pixels = render(font_path, text)
        digest = hashlib.sha1(pixels.tobytes()).digest()
        if not pixels.any() or digest in seen:  # nothing drawn, or the same picture as another
            return False
        seen.add(digest)
        found.append(text)
        return True

    for text in singles:
        if keep(text):
            for tone in _SKIN_TONES:
                keep(text + tone)
    for text in flags:
        keep(text)
    return tuple(found)


class EmojiSource(IndexedSource):
    """The emoji of a CBDT colour-emoji font (default: Debian's Noto Color Emoji), one split of them.
    split: "all", "train" (4 of every 5 base emoji) or "test" (the 5th, with its variants)."""
    kind = "emoji"

    def __init__(self, font_path=DEFAULT_FONT, split="all"):
        if split not in SPLITS:
            raise SourceError("emoji split {split!r} is unknown; choose one of {splits}", split=split,
                              splits=", ".join(SPLITS))
        if not os.path.isfile(font_path):
            raise SourceError("emoji font {font} does not exist; install it with `apt-get install "
                              "fonts-noto-color-emoji` or name another colour-emoji font", font=font_path)
        try:
            sequences = find_emoji(font_path)
        except OSError as e:
            raise SourceError("emoji font {font} cannot be read ({reason})", font=font_path, reason=e) from None
        if not sequences:
            raise SourceError("{font} draws no colour emoji; name a colour-emoji font such as Noto Color Emoji",
                              font=font_path)
        bases = sorted({s[0] for s in sequences})
        test = {b for i, b in enumerate(bases) if i % TEST_EVERY == TEST_EVERY - 1}
        self.sequences = [s for s in sequences if split == "all" or (s[0] in test) == (split == "test")]
        self.font_path, self.split = font_path, split
        self.count = len(self.sequences)
        self.num_channels = 3
        self.label_names = None
        self.description = f"emoji:{os.path.abspath(font_path)}:{split}"

    def item_name(self, item):
        return " ".join(f"U+{ord(c):04X}" for c in self.sequences[item])

    def load(self, item):
        return render(self.font_path, self.sequences[item]), None


def parse_spec(rest):
    """'' | 'train' | 'FONT' | 'FONT:test' (the part after 'emoji:') -> (font path, split)."""
    if rest in SPLITS:
        return DEFAULT_FONT, rest
    path, _, split = rest.rpartition(":") if rest.rpartition(":")[2] in SPLITS else (rest, "", "all")
    return path or DEFAULT_FONT, split
