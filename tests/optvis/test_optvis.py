import torch

from atlas import optvis


def test_fourier_images_are_seeded_per_element_and_valid_rgb():
    a = optvis.FourierImages([1, 2], 24, torch.device("cpu"))()
    b = optvis.FourierImages([2], 24, torch.device("cpu"))()
    assert a.shape == (2, 3, 24, 24) and 0 < a.min() and a.max() < 1
    assert torch.equal(a[1], b[0])


def test_identity_transform_only_pads():
    images = torch.rand(1, 3, 10, 10)
    robustness = optvis.Robustness(pad=2)
    identity = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    out = robustness(images, identity)
    assert out.shape == (1, 3, 14, 14)
    assert torch.allclose(out[:, :, 2:12, 2:12], images, atol=1e-5)
    assert torch.allclose(out[:, :, :2], torch.full((1, 3, 2, 14), 0.5), atol=1e-5)


def test_shift_moves_content_by_whole_pixels():
    images = torch.zeros(1, 3, 10, 10)
    images[:, :, 4, 4] = 1.0
    out = optvis.Robustness(pad=0)(images, torch.tensor([[2.0, 1.0, 1.0, 0.0]]))
    assert out[0, 0].argmax().item() == (4 + 1) * 10 + (4 + 2)


def test_rotation_turns_about_the_centre_and_scale_zooms():
    images = torch.rand(2, 3, 9, 9)
    quarter = torch.tensor([[0.0, 0.0, 1.0, torch.pi / 2], [0.0, 0.0, 1.0, -torch.pi / 2]])
    out = optvis.Robustness(pad=0)(images, quarter)
    torch.testing.assert_close(out[0], torch.rot90(images[0], 1, (1, 2)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], torch.rot90(images[1], -1, (1, 2)), atol=1e-5, rtol=0)
    # Scale 3 about the centre, on a ramp (which bilinear sampling keeps exactly):
    # column j shows column 4 + (j - 4) / 3.
    ramp = torch.arange(9.0).expand(1, 3, 9, 9)
    zoomed = optvis.Robustness(pad=0)(ramp, torch.tensor([[0.0, 0.0, 3.0, 0.0]]))
    torch.testing.assert_close(zoomed[0, 0, 5], 4 + (torch.arange(9.0) - 4) / 3, atol=1e-5, rtol=0)


def test_draws_are_per_element_and_reproducible():
    robustness = optvis.Robustness()
    both = robustness.draw([5, 6], steps=7)
    assert both.shape == (7, 2, 4)
    assert torch.equal(both[:, 1], robustness.draw([6], steps=7)[:, 0])
    shifts, scales, angles = both[..., :2], both[..., 2], both[..., 3]
    assert shifts.min() >= 0 and shifts.max() <= 7 + 3
    assert scales.min() >= 0.9 - 1e-6 and scales.max() <= 1.1 + 1e-6 and angles.abs().max() <= 0.175


def test_objective_values():
    acts = torch.zeros(3, 2, 3, 3)
    acts[:, 1] = 1.0
    acts[:, 1, 1, 1] = 10.0
    acts[1, 0] = 5.0  # another element's unit: not read
    maps = optvis.unit_maps(acts, torch.tensor([1, 1, 1]))
    assert maps.shape == (3, 3, 3)
    values = optvis.objective_values(maps, maps - 1, ["channel", "neuron", "negative"])
    assert values.tolist() == [2.0, 10.0, -1.0]  # negative: minus the signed value's mean
    points = optvis.unit_maps(acts[:, :, 1, 1], torch.tensor([0, 0, 1]))
    assert optvis.objective_values(points, points, ["channel", "neuron", "channel"]).tolist() == [0.0, 5.0, 10.0]


def test_diversity_penalty_is_high_for_alike_images_and_zero_for_disjoint_ones():
    alike = torch.ones(2, 2, 3, 3)
    disjoint = torch.zeros(2, 2, 3, 3)
    disjoint[0, 0] = 1.0
    disjoint[1, 1] = 1.0
    assert optvis.diversity_penalty(alike, [[0, 1]]).item() == 2.0  # two ordered pairs, cosine 1
    assert optvis.diversity_penalty(disjoint, [[0, 1]]).item() == 0.0


def test_objective_batch_layout():
    units, kinds, groups = optvis.objective_batch([4, 7], ["channel", "diversity"], diversity=2)
    assert units == [4, 4, 4, 7, 7, 7]
    assert kinds == ["channel", "diversity", "diversity"] * 2
    assert groups == [[1, 2], [4, 5]]


def test_maco_images_fix_the_magnitude_and_seed_per_element():
    images = optvis.MacoImages([1, 2], 24, torch.device("cpu"))
    a, b = images(), optvis.MacoImages([2], 24, torch.device("cpu"))()
    assert a.shape == (2, 3, 24, 24) and 0 < a.min() and a.max() < 1
    assert torch.equal(a[1], b[0])
    # Only the phase is a parameter; the magnitude is a buffer, the same for every image.
    assert [name for name, _ in images.named_parameters()] == ["phase"]
    assert images.magnitude[0, 0, 0, 0] == 0  # no DC: grey on average


def test_the_registry_names_every_parameterisation_and_variant_names_say_their_objective():
    from atlas import registry

    assert tuple(optvis.PARAMETERISATIONS) == registry.PARAMETERISATIONS  # config checks against the registry's
    assert [registry.variant("diversity", i) for i in range(2)] == ["diversity-0", "diversity-1"]
    assert registry.variant("channel", 0) == "channel"
    assert [registry.objective_of(v) for v in ("diversity-1", "channel", "negative")] == \
        ["diversity", "channel", "negative"]
