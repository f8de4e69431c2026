"""How images are encoded: the store's feature visualizations, recoded for the site."""

import numpy as np
from PIL import Image

from atlas.images import recode, save_webp


def test_a_feature_visualization_is_recoded_smaller_and_a_smaller_source_is_kept(tmp_path):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:96]
    pattern = (127 + 100 * np.sin(x / 3.0)[..., None] * np.cos(y / 5.0)[..., None] * np.array([1, 0.6, 0.3])
               + rng.normal(0, 12, (96, 96, 3)))
    pixels = np.clip(pattern, 0, 255).astype(np.uint8)
    stored = tmp_path / "fv.webp"
    save_webp(pixels, stored)  # the store's quality
    recode(stored, tmp_path / "site.webp")
    site = tmp_path / "site.webp"
    assert site.stat().st_size < 0.8 * stored.stat().st_size
    shown = np.asarray(Image.open(site).convert("RGB"), float)
    assert np.abs(shown - np.asarray(Image.open(stored).convert("RGB"), float)).mean() < 6  # the same picture
    recode(site, tmp_path / "again.webp", quality=95)  # more bytes at a higher quality: the source's own are kept
    assert (tmp_path / "again.webp").read_bytes() == site.read_bytes()
