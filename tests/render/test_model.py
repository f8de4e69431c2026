"""Page models: what stands for a unit in small, and a family's glimpse."""

from __future__ import annotations

from atlas.render.model import Example, Family, Picture, Sprite, Unit


def unit(i: int, *, featurevis: bool = True, failed: bool = False, example: bool = False) -> Unit:
    u = Unit(index=i, url=f"m/l/{i}.html", featurevis_thumb=f"fv-{i}.webp" if featurevis else None,
             featurevis_failed=failed)
    if example:
        sprite = Sprite(f"crops-{i}.webp")
        crop = Picture(sprite.path, sprite, sprite.tile((i, 0, 0), "store/crop.webp"))
        u.examples = [Example(image=i, src=f"img-{i}.webp", value=1.0, name="n", label="", x=0.5, y=0.5, crop=crop)]
    return u


def test_a_failed_feature_visualization_never_stands_for_its_unit():
    assert unit(0).picture == (Picture("fv-0.webp"), "feature visualization")
    found, what = unit(1, failed=True, example=True).picture
    assert (found.ref, what) == ("crops-1.webp#0", "top dataset example")  # a tile of the unit's sprite
    assert unit(2, failed=True).picture is None  # nothing else to show: nothing shown
    assert unit(3, featurevis=False, example=True).picture[0].ref == "crops-3.webp#0"


def test_a_crop_shown_twice_is_one_tile_and_a_full_sprite_starts_another_sheet():
    from atlas.render.read import _Reader

    sprites = {}
    reader = _Reader(store=None, copies={}, recoded={}, sprites=sprites, images={}, thumbnails=None)
    first = reader.crop((7, 1, 2), "examples/crop-0.webp", "m/l/0-15", 3)
    again = reader.crop((7, 1, 2), "polysemanticity/crop-3-0-0.webp", "m/l/0-15", 3)  # the same image and place
    other = reader.crop((8, 0, 0), "examples/crop-1.webp", "m/l/0-15", 3)
    assert (first.ref, again.ref, other.ref) == ("m/l/0-15/img/crops-3.webp#0",) * 2 + ("m/l/0-15/img/crops-3.webp#1",)
    assert sprites["m/l/0-15/img/crops-3.webp"].sources == ["examples/crop-0.webp", "examples/crop-1.webp"]
    assert first.tiles == 2  # as the page draws it: every tile is known before any page is written
    for image in range(9, 9 + 16383 // 64 - 2):  # fill the sheet (255 tiles: WebP's largest side)
        reader.crop((image, 0, 0), f"examples/crop-{image}.webp", "m/l/0-15", 3)
    spilled = reader.crop((1000, 0, 0), "examples/crop-x.webp", "m/l/0-15", 3)
    assert spilled.ref == "m/l/0-15/img/crops-3-1.webp#0" and sprites["m/l/0-15/img/crops-3.webp"].full


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
