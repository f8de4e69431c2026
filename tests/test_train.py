import json

import torch

from atlas.train import TrainConfig, augment, task_batch, train_and_save

TINY = TrainConfig(arch="alexnet", train_images=192, test_images=64, epochs=2, batch_size=32,
                   warmup_steps=2, workers=1)


def test_training_writes_weights_and_a_log_and_is_reproducible(tmp_path):
    first = train_and_save(TINY, tmp_path / "a", cache=tmp_path / "scenes")
    second = train_and_save(TINY, tmp_path / "b", cache=tmp_path / "scenes")
    a = torch.load(tmp_path / "a" / "alexnet.pt")
    b = torch.load(tmp_path / "b" / "alexnet.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert first["test_accuracy"] == second["test_accuracy"]
    records = [json.loads(line) for line in (tmp_path / "a" / "alexnet.log.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records if r["event"] != "step"] == ["data", "epoch", "epoch", "done"]
    assert records[-1]["config"]["train_images"] == 192
    assert sorted(p.name for p in (tmp_path / "scenes").iterdir()) == ["test-0-64-v2.npz", "train-0-192-v2.npz"]


def test_augment_flips_and_shifts_but_keeps_shape():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert not torch.equal(out, x)


def test_the_rotation_task_turns_each_scene_and_asks_for_the_turn():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4).repeat(4, 1, 1, 1)  # 8 images
    labels = torch.zeros(8, dtype=torch.long)
    turned, turns = task_batch("rotation", x, labels)  # no generator: image i gets i % 4 quarter turns
    assert turns.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    for i in range(8):
        assert torch.equal(turned[i], torch.rot90(x[i], i % 4, dims=(1, 2)))
    drawn = task_batch("rotation", x, labels, torch.Generator().manual_seed(0))[1]
    assert drawn.min() >= 0 and drawn.max() <= 3 and len(set(drawn.tolist())) > 1
    same, kept = task_batch("classes", x, labels + 5)
    assert same is x and kept.tolist() == [5] * 8


def test_a_rotation_model_has_four_outputs_and_its_own_log(tmp_path):
    cfg = TrainConfig(arch="alexnet", task="rotation", train_images=64, test_images=32, epochs=1, batch_size=32,
                      warmup_steps=1, workers=1)
    summary = train_and_save(cfg, tmp_path, "rotation", cache=tmp_path / "scenes")
    state = torch.load(tmp_path / "rotation.pt")
    assert state["head.3.weight"].shape[0] == 4
    assert summary["task"] == "rotation" and 0 <= summary["test_accuracy"] <= 1
