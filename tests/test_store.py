import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from atlas.artifacts import SCHEMA, LayerEntry, ModelEntry, Plan, Weights
from atlas.errors import AtlasError
from atlas.files import write_atomic
from atlas.store import CONTENTS, EmptyResult, Store, artifact_key


def test_keys_are_stable_and_change_with_any_part():
    key = artifact_key(stage="featurevis", layer="conv1", steps=8)
    assert key == artifact_key(steps=8, layer="conv1", stage="featurevis")
    assert key != artifact_key(stage="featurevis", layer="conv1", steps=9)


def test_an_artifact_appears_only_when_its_block_succeeds(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(RuntimeError):
        with store.writing("stage", "k1") as folder:
            (folder / "data.json").write_text("{}")
            raise RuntimeError("crash while writing")
    assert not store.has("stage", "k1")
    assert not any((tmp_path / "tmp").iterdir())
    with store.writing("stage", "k1") as folder:
        (folder / "data.json").write_text('{"a": 1}')
    assert store.has("stage", "k1")
    assert (store.path("stage", "k1") / "data.json").read_text() == '{"a": 1}'


def test_rewriting_an_artifact_replaces_it(tmp_path):
    store = Store(tmp_path)
    for value in ("old", "new"):
        with store.writing("stage", "k") as folder:
            (folder / value).write_text(value)
    assert sorted(p.name for p in store.path("stage", "k").iterdir()) == [CONTENTS, "new"]


def test_temp_folders_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    host = socket.gethostname()
    kept = [f"{os.getpid()}-stage-mine", f"{os.getpid()}+{host}+stage-mine",
            f"{dead}+another-machine+stage-abc"]  # a pid on another machine of a sharded sweep means nothing here
    for name in [f"{dead}-stage-abc", f"{dead}+{host}+stage-abc", *kept]:
        (tmp_path / "tmp" / name).mkdir(parents=True)
    Store(tmp_path)
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == sorted(kept)


def test_only_the_manifest_keeper_records(tmp_path):
    Store(tmp_path, manifests=False).record("featurevis", "k", {"layer": "conv1"})
    assert Store(tmp_path).manifest("featurevis") == {}


def test_manifest_and_plan(tmp_path):
    store = Store(tmp_path)
    store.record("featurevis", "k", {"layer": "conv1"})
    store.record("featurevis", "k", {"layer": "conv1"})
    assert store.manifest("featurevis") == {"k": {"layer": "conv1"}}
    assert store.read_plan("d") is None
    plan = Plan(atlas="0", models=[ModelEntry("m", "zoo:x", "none", "abc", 16, [0.5] * 3, [0.2] * 3,
                                             [LayerEntry("conv1", [4, 8, 8], [0, 1], {"featurevis": ["k"]})])],
                across={"superposition": "s", "universality": {"pairs": ["p"], "summary": "q"}})
    store.write_plan("d", plan)
    assert store.read_plan("d") == plan
    assert plan.artifacts() == [("featurevis", "k"), ("superposition", "s"), ("universality", "p"),
                                ("universality", "q")]


def test_a_store_of_another_schema_is_refused_with_one_line(tmp_path):
    Store(tmp_path).write_plan("d", Plan(atlas="0"))
    assert (tmp_path / "schema").read_text() == f"{SCHEMA}\n"
    (tmp_path / "schema").write_text("0\n")
    with pytest.raises(AtlasError, match=r"schema 0.*reads schema 1.*sweep.cache"):
        Store(tmp_path)


def test_a_record_with_fields_of_another_schema_names_its_file(tmp_path):
    (tmp_path / "data.json").write_text('{"units": [0], "kernel": [3, 3], "stats": {}, "colour": 1}')
    with pytest.raises(AtlasError, match=r"data.json: fields colour are not in the weights artifact"):
        Weights.read(tmp_path)
    (tmp_path / "data.json").write_text('{"units": [0], "kernel": [3, 3], "stats": {}}')
    assert Weights.read(tmp_path) == Weights(units=[0], kernel=[3, 3], stats={})


def test_write_atomic_leaves_no_temp_files(tmp_path):
    write_atomic(tmp_path / "a" / "f.txt", "one")
    write_atomic(tmp_path / "a" / "f.txt", b"two")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["f.txt"]
    assert (tmp_path / "a" / "f.txt").read_text() == "two"


@pytest.mark.parametrize("array", [np.zeros((3, 4)), np.full((2, 2), 0.5), np.array([[1.0, np.nan]]), np.zeros(0)])
def test_an_empty_constant_or_non_finite_array_is_refused_unless_the_record_says_no_answer(tmp_path, array):
    store = Store(tmp_path)
    with pytest.raises(EmptyResult, match="responses.npy"), store.writing("tuning", "k1") as folder:
        np.save(folder / "responses.npy", array)
        (folder / "data.json").write_text('{"units": {}}')
    assert not store.path("tuning", "k1").exists()  # nothing half-written
    with store.writing("tuning", "k2") as folder:  # the same, stored as no answer with its reason
        np.save(folder / "responses.npy", np.nan_to_num(array))
        (folder / "data.json").write_text('{"units": {}, "no_answer": "it gives the same response to every stimulus"}')
    assert store.path("tuning", "k2").exists()
    with store.writing("tuning", "k3") as folder:  # values are values
        np.save(folder / "responses.npy", np.arange(6.0).reshape(2, 3))


def test_tuning_says_which_units_have_no_answer_and_why():
    from atlas.stages.tuning import no_answers

    responses = np.array([[0.0, 2.0, 1.0, np.inf], [0.0, 2.0, 3.0, 1.0], [0.0, 2.0, -1.0, 1.0]])
    assert no_answers(responses) == ["it gives the same response to every stimulus",
                                     "it gives the same response to every stimulus", None,
                                     "its responses to the stimuli are not finite"]
