import torch

from atlas.stages.examples import StreamingTopK, spatial_max


def test_streaming_topk_equals_topk_over_the_whole_set():
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(103, 5, generator=generator)
    positions = torch.randint(0, 50, (103, 5), generator=generator)
    top = StreamingTopK(units=5, k=7)
    for start in range(0, 103, 10):
        top.update(values[start:start + 10], torch.arange(start, min(start + 10, 103)), positions[start:start + 10])
    expected_values, expected_images = values.T.topk(7, dim=1)
    assert torch.equal(top.values, expected_values)
    assert torch.equal(top.images, expected_images)
    assert torch.equal(top.positions, positions.T.gather(1, expected_images))


def test_topk_with_fewer_items_than_k():
    top = StreamingTopK(units=1, k=4)
    top.update(torch.tensor([[2.0], [5.0]]), torch.tensor([10, 11]), torch.tensor([[0], [3]]))
    assert top.values.tolist() == [[5.0, 2.0]] and top.images.tolist() == [[11, 10]]


def test_spatial_max_gives_value_and_flat_position():
    acts = torch.zeros(1, 2, 3, 4)
    acts[0, 0, 2, 1] = 5.0
    acts[0, 1, 0, 3] = 7.0
    values, positions = spatial_max(acts)
    assert values.tolist() == [[5.0, 7.0]] and positions.tolist() == [[2 * 4 + 1, 3]]
