"""Slugs: safe in a path and a URL, readable, and distinct for distinct names in any script."""

from atlas.names import slug


def test_unsafe_characters_become_dashes():
    assert slug("My <b>net</b> v2") == "My-b-net-b-v2"
    assert slug("a/b\\c") == "a-b-c" and slug("..") == "unnamed"
    assert slug("resnet18.v1") == "resnet18.v1"  # dots survive: layer names stay readable


def test_names_in_other_scripts_keep_their_letters_and_stay_distinct():
    names = ["模型", "网络", "ResNet (日本語)", "сеть", "Réseau"]
    slugs = [slug(n) for n in names]
    assert slugs == ["模型", "网络", "ResNet-日本語", "сеть", "Réseau"]
    assert len(set(slugs)) == len(names)
