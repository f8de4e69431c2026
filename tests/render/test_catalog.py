"""units.json's compact form: ``packed`` and ``unpacked`` give back the same entries."""

from atlas.render.catalog import packed, unpacked


def test_a_layers_units_pack_and_unpack_to_the_same_entries():
    folder = "models/m/layer 1/"
    units = [
        {"index": 0, "url": "models/m/layer 1/0-15/0.html", "featurevis": "models/m/layer 1/0-15/img/fv-0.webp",
         "featurevis_variants": {"neuron": {"src": "models/m/layer 1/0-15/img/fv-0-neuron.webp", "activation": 2.5,
                                            "failed": False}},
         "weights": None,
         "examples": ["models/m/layer 1/0-15/img/crops-0.webp#0", "data/0-499/img-7.webp"],  # a crop, a thumbnail
         "negative_examples": [],
         "inputs": [{"layer": "conv1", "index": 3, "weight": 0.82}, {"layer": "conv1", "index": 1, "weight": -0.5}],
         "outputs": [], "tuning": {"best_kind": "curve"}, "measures": {"colors": [1.0, 2.0]}},
        {"index": 17, "url": "models/m/layer 1/16-31/17.html", "featurevis": None, "featurevis_variants": {},
         "weights": "models/m/layer 1/16-31/img/w-17.webp", "examples": [], "negative_examples": [],
         "inputs": [], "outputs": [{"layer": "layer 2", "index": 0, "weight": 1.0}], "tuning": None},
    ]
    found = packed(units, folder)
    assert found["fields"][:3] == ["index", "url", "featurevis"] and "measures" in found["fields"]
    row = dict(zip(found["fields"], found["units"][0]))
    assert row["url"] == "0-15/0.html" and row["examples"] == ["0-15/img/crops-0.webp#0", "../../../data/0-499/img-7.webp"]
    assert row["inputs"] == [["conv1", 3, 0.82], ["conv1", 1, -0.5]]
    assert unpacked(found, folder) == units  # the second has no measures, and gets none back
