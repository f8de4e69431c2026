import json

import torch

from atlas.train import TrainConfig, augment, train_and_save

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
