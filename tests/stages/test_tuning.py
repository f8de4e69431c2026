import numpy as np
import pytest
import torch
from torch import nn

from atlas.models import LoadedModel
from atlas.data.bank import stimulus_bank
from atlas.stages.tuning import conv_centre, respond, summarize


def hand_set(kernels: list[np.ndarray]) -> LoadedModel:
    """One 9x9 convolution whose output channels have the given (3, 9, 9) kernels."""
    conv = nn.Conv2d(3, len(kernels), 9, padding=4, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.stack(kernels)).float())
    return LoadedModel("hand", "test", nn.Sequential(conv).eval(), (0.0,) * 3, (1.0,) * 3, 32, "d")


def grey(kernel: np.ndarray) -> np.ndarray:
    return np.repeat(kernel[None], 3, axis=0) / 3


def tune(kernels):
    model = hand_set(kernels)
    bank = stimulus_bank(32, 9)
    return summarize(respond(model, "0", bank, range(len(kernels)), torch.device("cpu")), bank)


def angle_between(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


@pytest.mark.parametrize("kernel, stride, padding, dilation, groups, size", [
    (3, 1, 1, 1, 1, 16), (7, 2, 3, 1, 1, 17), (5, 2, 0, 1, 1, 20), (3, 1, 2, 2, 1, 15), (3, 2, 1, 1, 4, 16),
    ((5, 3), (2, 1), (2, 0), 1, 1, 19)])
def test_a_convolution_at_its_centre_equals_the_full_map_there(kernel, stride, padding, dilation, groups, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 12, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = torch.randn(3, 8, size, size + 3)
    full = conv(x)
    channels = torch.tensor([0, 5, 11])
    centre = conv_centre(conv, x, channels)
    expected = full[:, channels, full.shape[2] // 2, full.shape[3] // 2]
    assert centre.shape == (3, 3, 1, 1)
    assert torch.allclose(centre[:, :, 0, 0], expected, atol=1e-5)


def test_an_edge_detector_prefers_its_orientation():
    ramp = np.tile(np.linspace(-1, 1, 9), (9, 1))  # dark on the left, bright on the right
    right, up = tune([grey(ramp), grey(np.rot90(ramp))])  # rot90 turns "right" into "up"
    assert right["best_kind"] == "edge" and up["best_kind"] == "edge"
    assert angle_between(right["orientation_deg"], 0) <= 10
    assert angle_between(up["orientation_deg"], 90) <= 10
    assert right["preferred"]["edge"]["orientation"] == 0 and up["preferred"]["edge"]["orientation"] == 90
    assert right["orientation_selectivity"] > 0.3


def test_centre_surround_units_prefer_spots_and_a_plain_unit_prefers_the_whole_field():
    y, x = np.mgrid[-4:5, -4:5]
    dog = np.where(np.hypot(x, y) <= 1.5, 1.0, -9 / 72)  # excitatory centre, inhibitory surround
    on_centre, off_centre, plain = tune([grey(dog), grey(-dog), grey(np.ones((9, 9)))])
    # The field is a disc inscribed in the 9x9 kernel, so the kernel's corners still see grey:
    # a spot beats it by ~0.48 for both centre-surround units, and loses for the plain unit.
    assert on_centre["center_surround"] > 0.4 and on_centre["preferred"]["blob"]["color"] == "white"
    assert off_centre["center_surround"] > 0.4 and off_centre["preferred"]["blob"]["color"] == "black"
    assert plain["center_surround"] < -0.1


def test_a_red_minus_green_unit_is_color_opponent():
    kernel = np.zeros((3, 9, 9))
    kernel[0, :, 5:], kernel[1, :, 5:] = 1.0, -1.0  # R - G on the right half
    (unit,) = tune([kernel])
    assert unit["color_opponency"] > 0.5
    preferred = unit["preferred"]["color_edge"]
    assert preferred["near"] in ("red", "magenta") and angle_between(preferred["orientation"], 0) <= 45


def test_bank_covers_every_kind_within_the_aperture():
    bank = stimulus_bank(32, 10)
    kinds = {p["kind"] for p in bank.params}
    assert kinds == {"curve", "curved_edge", "edge", "high_low", "line", "grating", "color_edge", "blob", "field"}
    corners = np.stack(bank.images)[:, :, :3, :3]
    assert np.allclose(corners, 0.5)  # outside the receptive field: grey


def test_curved_edges_face_their_bright_side_as_edges_do():
    """A curved edge's orientation is the way its bright side faces, whichever side the disc is."""
    bank = stimulus_bank(32, 20)
    for i in bank.kind("curved_edge"):
        p, image = bank.params[i], bank.images[i][0]
        theta = np.radians(p["orientation"])
        # Two pixels either side of the centre along the orientation (y up in stimuli, rows down here).
        ahead = image[int(round(15.5 - 3 * np.sin(theta))), int(round(15.5 + 3 * np.cos(theta)))]
        behind = image[int(round(15.5 + 3 * np.sin(theta))), int(round(15.5 - 3 * np.cos(theta)))]
        assert ahead > behind, p
    assert {bank.params[i]["bulge"] for i in bank.kind("curved_edge")} == {"bright", "dark"}


def test_rotations_turn_counter_clockwise_about_the_given_point():
    from atlas.stages.tuning import rotations

    image = torch.zeros(3, 9, 9)
    image[:, 4, 8] = 1.0  # a dot right of the centre
    turned = rotations(image, (4, 4), [0, 90, 180, 270])
    spots = [(t[0] > 0.5).nonzero().tolist() for t in turned]
    assert spots == [[[4, 8]], [[0, 4]], [[4, 0]], [[8, 4]]]  # right, up, left, down
    off_centre = rotations(image, (4, 6), [180])[0, 0]
    assert off_centre[4, 4] > 0.5  # about (4, 6): the dot at x=8 lands at x=4


def test_joint_tuning_hands_over_between_rotated_copies_of_a_detector():
    from atlas.stages.tuning import JOINT_ANGLES, joint_tuning

    ramp = np.tile(np.linspace(-1, 1, 9), (9, 1))
    kernels = [grey(np.rot90(ramp, k)) for k in range(4)]  # edges facing right, up, left, down
    model = hand_set(kernels)
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255  # bright on the right: unit 0's favourite
    takeover = joint_tuning(model, "0", range(4), {0: [(image, (16, 16), (15.5, 15.5))]},
                            torch.device("cpu"))[0]["takeover"]
    for unit, angle in enumerate((0, 90, 180, 270)):  # turning the image hands over to each unit in turn
        assert takeover[JOINT_ANGLES.index(angle)] == unit


def test_joint_tuning_turns_an_example_two_units_share_once():
    from atlas.stages.tuning import joint_curves

    ramp = np.tile(np.linspace(-1, 1, 9), (9, 1))
    model = hand_set([grey(np.rot90(ramp, k)) for k in range(2)])
    calls = []
    model.module.register_forward_pre_hook(lambda module, inputs: calls.append(len(inputs[0])))
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255
    shared = (image, (16, 16), (15.5, 15.5))
    curves = dict(joint_curves(model, "0", range(2), {0: [shared], 1: [shared]}, torch.device("cpu"), angles=(0, 90)))
    assert calls == [2]  # one batch of two turns, not one per unit
    np.testing.assert_array_equal(curves[0], curves[1])
    assert curves[0].shape == (2, 2) and curves[0][0].argmax() == 0 and curves[0][1].argmax() == 1


def test_joint_tuning_in_little_memory_gives_the_same_answer():
    """Past its memory, joint tuning turns a shared example again and computes the curves
    twice (the layer's scale, then the takeovers) instead of keeping units x angles x units."""
    from atlas.stages.tuning import joint_tuning

    ramp = np.tile(np.linspace(-1, 1, 9), (9, 1))
    model = hand_set([grey(np.rot90(ramp, k)) * (1 + k) for k in range(4)])  # units on different scales
    calls = []
    model.module.register_forward_pre_hook(lambda module, inputs: calls.append(len(inputs[0])))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    shared = (images[0], (16, 16), (15.5, 15.5))
    examples = {0: [shared, (images[1], (10, 20), (9.5, 19.5))], 1: [shared], 2: [(images[2], (16, 16), (15.5, 15.5))],
                3: [shared, (images[2], (16, 16), (15.5, 15.5))]}
    roomy = joint_tuning(model, "0", range(4), examples, torch.device("cpu"))
    assert len(calls) == 3  # three distinct places, each turned once
    calls.clear()
    tight = joint_tuning(model, "0", range(4), examples, torch.device("cpu"), memory=0)
    assert len(calls) == 2 * 6  # nothing kept: every use turned, in each of two passes
    assert tight == roomy
    assert all(max(c["self"]) <= 1 + 1e-6 for c in roomy.values())  # each unit over its own largest response
    assert {u for c in roomy.values() for u in c["takeover"]} <= set(range(4))


@pytest.mark.parametrize("size, centre", [(16, (8.0, 8.0)), (16, (7.5, 7.5)), (15, (7.0, 7.0)), (15, (8.5, 8.5))])
def test_stimuli_are_drawn_on_the_centre_they_are_asked_for(size, centre):
    """A spot drawn for a unit whose field is centred half a pixel off the image's centre
    (even sizes) lands on that unit's pixel, exactly: tiny fields need it."""
    bank = stimulus_bank(size, 6, centre)
    spot = next(i for i, p in enumerate(bank.params) if p["kind"] == "blob" and p["color"] == "white"
                and "surround" not in p)
    image = bank.images[spot][0]
    rows, cols = np.nonzero(image > 0.75)
    assert (rows.mean(), cols.mean()) == pytest.approx(centre, abs=1e-6)


def test_the_plan_turns_an_example_units_share_once():
    """``tuning.cost`` counts distinct examples: few units share few, a wide layer many,
    never more than the places the images have (fitted on the whole EfficientNet-Lite0:
    827 of its head's 1,280 strongest examples are distinct; the estimate says 861)."""
    from atlas.stages.tuning import PLACES_PER_IMAGE, distinct_examples

    assert distinct_examples(1, 1, 300) == pytest.approx(1.0, abs=0.01)
    assert round(distinct_examples(32, 1, 300)) == 32 and round(distinct_examples(1280, 1, 300)) == 861
    assert distinct_examples(1280, 3, 300) > distinct_examples(1280, 1, 300)
    assert distinct_examples(10**7, 1, 300) == pytest.approx(PLACES_PER_IMAGE * 300)
    assert distinct_examples(64, 1, 0) == 0.0  # no dataset: nothing to turn
