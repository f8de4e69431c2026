"""Page models: what stands for a unit in small, and a family's glimpse."""

from __future__ import annotations

from atlas.render.model import Example, Family, Unit


def unit(i: int, *, featurevis: bool = True, failed: bool = False, example: bool = False) -> Unit:
    u = Unit(index=i, url=f"m/l/{i}.html", featurevis_thumb=f"fv-{i}.webp" if featurevis else None,
             featurevis_failed=failed)
    if example:
        u.examples = [Example(src=f"img-{i}.webp", value=1.0, name="n", label="", x=0.5, y=0.5, crop=f"crop-{i}.webp")]
    return u


def test_a_failed_feature_visualization_never_stands_for_its_unit():
    assert unit(0).picture == ("fv-0.webp", "feature visualization")
    assert unit(1, failed=True, example=True).picture == ("crop-1.webp", "top dataset example")
    assert unit(2, failed=True).picture is None  # nothing else to show: nothing shown
    assert unit(3, featurevis=False, example=True).picture == ("crop-3.webp", "top dataset example")


def test_a_family_glimpse_is_its_most_typical_member_then_the_ends_of_its_order():
    members = [unit(i, failed=i == 5) for i in range(6)]
    family = Family(symbol="Cv", name="Curve", layer="l", kind="named", description="", url="f.html",
                    members=members, share=0.5, representative=members[2], order_by="orientation", evidence=[])
    assert [u.index for u in family.glimpse] == [2, 0, 4]  # 5 failed and has no other picture
    family.members = members[2:3]
    assert [u.index for u in family.glimpse] == [2]
    family.representative = members[5]
    family.members = [members[5], members[1]]
    assert [u.index for u in family.glimpse] == [1]
