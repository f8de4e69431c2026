import numpy as np
import pytest

from atlas.data.bank import spot_scales, stimulus_bank
from atlas.data.stimuli import curve, curve_bank, line, to_rgb


def _centroid(image):
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    c = (image.shape[0] - 1) / 2
    return (xs * image).sum() / image.sum() - c, c - (ys * image).sum() / image.sum()


@pytest.mark.parametrize("orientation, direction", [(0, (1, 0)), (90, (0, 1)), (180, (-1, 0)), (270, (0, -1))])
def test_curve_passes_through_the_centre_and_bulges_towards_its_orientation(orientation, direction):
    image = curve(41, orientation, radius=10)
    assert image[20, 20] == pytest.approx(1.0)
    x, y = _centroid(image)  # the arc's mass lies behind its apex, towards the centre of curvature
    assert np.sign(-x) == np.sign(direction[0]) or direction[0] == 0
    assert np.sign(-y) == np.sign(direction[1]) or direction[1] == 0


def test_curve_is_a_rotation_of_itself():
    assert np.allclose(np.rot90(curve(31, 0, 8)), curve(31, 90, 8), atol=1e-6)


def test_line_orientation_and_length():
    vertical = line(21, 0, length=10, width=1)
    assert vertical[:, 10].sum() == pytest.approx(11, abs=1) and vertical[10, :].sum() == pytest.approx(1, abs=0.1)
    assert np.allclose(line(21, 90, 10).T, line(21, 0, 10), atol=1e-6)
    assert np.allclose(line(21, 30, 10), line(21, 210, 10), atol=1e-6)  # lines repeat every 180


def test_banks_and_rgb():
    bank = curve_bank(16, np.array([0.0, 90.0]), radii=(4.0, 8.0))
    assert bank.shape == (2, 2, 16, 16)
    rgb = to_rgb(bank, ink=0.0, paper=1.0)
    assert rgb.shape == (2, 2, 3, 16, 16) and rgb.min() >= 0 and rgb.max() == 1.0


def test_a_field_whose_weight_is_in_its_middle_gets_spots_of_that_size_too():
    """A 21 px field with an effective diameter of 7 px (a patch whose attention mixes in
    its neighbours): spots of 15% and 30% of both, the spot on its opponent at both; a
    field whose effective diameter is over half its extent keeps the bank as it was."""
    plain = stimulus_bank(56, 21)
    small = stimulus_bank(56, 21, effective=7.0)
    radii = {p["radius"] for p in small.params if p["kind"] == "blob" and "surround" not in p}
    assert radii == {3.15, 6.3, 1.05, 2.1}
    assert {p["radius"] for p in small.params if "surround" in p} == {6.3, 2.1}
    assert len(small.params) == len(plain.params) + 8 * 2 + 30  # 8 colors x 2 sizes, 30 opponent pairs
    wide = stimulus_bank(56, 21, effective=12.0)
    assert wide.params == plain.params and all(np.array_equal(a, b) for a, b in zip(wide.images, plain.images))
    spot = small.images[next(i for i, p in enumerate(small.params) if p.get("radius") == 1.05 and p["color"] == "white")]
    assert (spot.mean(0) > 0.75).sum() <= 9  # about 3 px across


def test_spots_at_the_effective_scale_are_decided_at_the_images_size():
    """A field wider than the image is drawn at the image's size, and so are the spots
    decided: a centred bank (drawn on a larger canvas) holds the same stimuli as the
    null's and the tuning key's ``spot_scales`` say, and no spot is under the smallest field."""
    plain = len(stimulus_bank(32, 59).params)
    assert spot_scales(32, 59, 18.11) == (32.0,)
    for centre in (None, (15.5, 15.5), (12.0, 20.0)):
        assert len(stimulus_bank(32, 59, centre, 18.11).params) == plain
    assert spot_scales(16, 1, 1.0) == (6.0,)  # a 1 px field is drawn at 6 px, its spots too
