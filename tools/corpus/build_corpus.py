#!/usr/bin/env python3
"""Assemble the offline colorization training corpus from Debian packages.

    python tools/corpus/build_corpus.py --out data/corpus

Reproducible and offline apart from ``apt-get download``: each source package is
downloaded once into a cache (default ``data/corpus-cache/debs``), unpacked with
``dpkg-deb -x`` into ``data/corpus-cache/tree/`` (nothing is installed), and only
the files named by the reviewed allow lists in ``SOURCES`` below are used.
Every kept file is a real colour camera photograph (checked by eye on contact
sheets made with ``tools/corpus/contact_sheet.py``).

Output under ``--out``:
  scenes/*.jpg      RGB photographs, longer side <= 512, JPEG q95
  cutouts/*.png     RGBA photographic cut-outs trimmed to alpha bbox, longer side <= 384
  composites/*.jpg  copy-paste augmentation: train cut-outs on train scenes (seeded)
  manifest.csv      one row per file (also copied to tools/corpus/manifest.csv)
  dropped.csv       files the allow lists named but the filters dropped, with reason

Needs only numpy + Pillow (no torch).  Evaluation sources are never used: see
``DENYLIST_PACKAGES`` / ``DENYLIST_PACKAGE_GLOBS`` / ``DENYLIST_PATH_WORDS``;
with ``--check-against DIR`` (default: ../shared/data/photos-dev when present)
any image whose perceptual hash is close to a photo there is dropped and reported.
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# --------------------------------------------------------------------------
# Evaluation sources: never in the corpus.
# --------------------------------------------------------------------------
DENYLIST_PACKAGES = frozenset({
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "lomiri-wallpapers",
    "gnome-backgrounds",
    "ukui-wallpapers",
})
DENYLIST_PACKAGE_GLOBS = (
    "lomiri-wallpapers*",
    "python3-skimage*",
    "python3-sklearn*",
    "python3-matplotlib*",
    "python3-scipy*",
    "matplotlib*",
    "scikit-image*",
    "scikit-learn*",
    "scipy*",
)
# A corpus file's original path must not mention these (sample data of the
# evaluation libraries).
DENYLIST_PATH_WORDS = ("skimage", "scikit-image", "scikit_image", "sklearn",
                       "scikit-learn", "scikit_learn", "matplotlib", "mpl-data",
                       "scipy")

MANIFEST_COLUMNS = ["file", "package", "package_version", "original_path", "licence",
                    "kind", "split", "sha256", "width", "height", "parts"]
REQUIRED_COLUMNS = ["file", "package", "package_version", "original_path", "licence",
                    "kind", "split", "sha256", "width", "height"]
KINDS = ("scene", "cutout", "composite")

# Filters
MIN_CHROMA = 5.0          # mean CIE LAB chroma (sqrt(a*^2+b*^2)) below this: near-gray
MIN_SIDE = {"scene": 128, "cutout": 64}
SCENE_MAX = 512
CUTOUT_MAX = 384
# Near duplicates: dhash AND ahash Hamming distances (of 64 bits) this small AND
# 16x16 colour thumbnails this close (mean absolute difference, 0-255).  The
# thumbnail test stops different objects with the same outline (a lemon and a
# tennis ball) from counting as duplicates.
DHASH_DUP = 6
AHASH_DUP = 6
THUMB_DUP = 12.0
# The same test against the evaluation photos, slightly looser (those were
# resized to 512 px and re-encoded; mirrored copies are checked too).
EVAL_DHASH = 8
EVAL_AHASH = 8
EVAL_THUMB = 16.0
VAL_PERCENT = 10
DEFAULT_SEED = 20240610

# --------------------------------------------------------------------------
# Sources.  Paths are relative to ``root`` inside the unpacked package; ``*``
# in a glob also matches '/'.  Everything not matched by ``keep`` is ignored;
# ``drop`` removes reviewed non-photos (drawings, duplicates, ...) from what
# ``keep`` matched.  One-line reason per entry.
# --------------------------------------------------------------------------


@dataclass
class Source:
    package: str
    kind: str                       # scene | cutout
    root: str
    keep: list                      # (glob, reason)
    drop: list = field(default_factory=list)   # (glob, reason)
    force: list = field(default_factory=list)  # (glob, reason): reviewed photos kept despite drop
    licence_note: str = ""
    # "rcc": root holds Qt resource archives; their members are the files
    # "edj": root holds Enlightenment .edj (Eet) files; the largest JPEG of
    # each is the file (named <stem>.jpg)
    archive: str = ""
    # rel path -> path in the upstream source tree, to look up per-file
    # licences in a DEP-5 debian/copyright (None: use the 'Files: *' licence)
    source_path: object = None
    # licence for every file of this source when the package states one more
    # precisely than debian/copyright's 'Files: *' (explained in licence_note)
    licence: str = ""
    # (cols, rows): store a large photo as a grid of crops instead of one
    # downscale; all crops of a photo share its split (no train/val leak)
    tiles: object = None
    # panorama tiles whose sky is transparent: keep only the fully opaque rows
    opaque_ground: bool = False


TUX_DROP = [
    ("*/cartoon/*", "cartoon folders: drawings"),
    ("symbols/*", "letters, signs, symbols, shapes, money, chess, music: drawings"),
    ("town/*", "road signs, flags, outlines, houses: drawings (photos re-added via force)"),
    ("*_mirror.png", "mirrored copy of another stamp: duplicate"),
    ("animals/insects/bee.png", "drawing"),
    ("animals/mammals/aquatic/whale.png", "painted/illustration"),
    ("animals/mammals/echidna.png", "black silhouette (colorable stamp)"),
    ("animals/mammals/hedgehog.png", "drawing"),
    ("animals/fish/clownfish.png", "colours look hue-shifted (cyan clownfish): doubtful"),
    ("clothes/button.png", "drawing"),
    ("clothes/hats/*", "drawings"),
    ("clothes/t_*", "line drawings (t-shirt, glove, ...)"),
    ("clothes/t-shirt_01.png", "drawing"),
    ("clothes/sunglasses_*", "colorable stamp, drawing"),
    ("food/pizza.png", "drawing"),
    ("household/arttools/highlighter.png", "edited photo with drawn text, tintable"),
    ("household/arttools/pen_dryerase.png", "edited photo with drawn text, tintable"),
    ("medical/tooth.png", "drawing"),
    ("military/vehicles/ww2_german_gun.png", "render/drawing"),
    ("military/vehicles/f22_raptor.png", "possibly a render: doubtful"),
    ("naturalforces/explosion.png", "possibly a render: doubtful"),
    ("naturalforces/lightningbolt.png", "colorable stamp, drawing"),
    ("people/body_parts/*", "eye drawing, colorable wigs/moustaches"),
    ("plants/trees/holly_leaves.png", "looks drawn"),
    ("seasonal/*", "mostly drawings (reviewed photos re-added via force)"),
    ("space/*", "astronomy / space renders"),
    ("sports/rugby_goal_posts.png", "drawing"),
    ("sports/soccer.png", "looks drawn"),
    ("vehicles/7spoke256.png", "possibly a render: doubtful"),
    ("vehicles/emergency/sedan_police*", "edited/drawn"),
    ("vehicles/flight/balloon360.png", "render"),
    ("vehicles/ship/chineseJunk.png", "painting/drawing"),
]
# Photos inside dropped folders, re-admitted after review.
TUX_FORCE = [
    ("seasonal/candle.png", "photo of a candle"),
    ("seasonal/christmas/Candy_cane_photo_*.png", "photos of candy canes"),
    ("seasonal/christmas/Christmas_Tree_photo.png", "photo"),
    ("seasonal/christmas/Christmas_pudding.png", "photo"),
    ("seasonal/christmas/German_Christmas_toy.png", "photo of a wooden toy"),
    ("seasonal/christmas/Mince_Pie.png", "photo"),
    ("seasonal/christmas/Roast_turkey.png", "photo"),
    ("seasonal/halloween/grave-*.png", "photos of gravestones"),
    ("town/uk_post_box.png", "photo of a red post box"),
    ("town/usps_mailbox.png", "photo of a blue mailbox"),
    ("town/monuments/inukshuk-photo.png", "photo of a stone inukshuk"),
]

SOURCES = [
    Source(
        "tuxpaint-stamps-default", "cutout", "usr/share/tuxpaint/stamps",
        keep=[
            ("animals/*.png", "photographic animal cut-outs (birds, fish, insects, mammals, ...)"),
            ("clothes/*.png", "clothes pins (photos); drawings dropped below"),
            ("food/*.png", "fruit, vegetables, nuts, spices: photos"),
            ("hobbies/*.png", "musical instruments, camera, binoculars: photos"),
            ("household/*.png", "dishes, tools, household objects: photos"),
            ("medical/*.png", "bandage, thermometer, stethoscope, syringe: photos"),
            ("military/*.png", "vehicles, people: photos"),
            ("naturalforces/fire.png", "photo of a flame"),
            ("people/*.png", "fireman, doll: photos"),
            ("plants/*.png", "flowers, mushrooms, trees: photos"),
            ("sports/*.png", "balls, racket, trophy: photos"),
            ("vehicles/*.png", "cars, trucks, bus, tricycle, plane, boat: photos"),
        ],
        drop=TUX_DROP,
        force=TUX_FORCE,
        licence_note="debian/copyright: Files: * License: GPL-2",
    ),
    Source(
        "kphotoalbum", "scene", "usr/share/kphotoalbum/demo",
        keep=[("*.jpg", "demo photo album: people, pets, landscapes, interiors")],
        drop=[
            ("CategoryImages/*", "crops of the demo photos: duplicates"),
            ("qt-logo.jpg", "logo"),
        ],
        licence_note="debian/copyright: GPL-2+ (whole package)",
    ),
    Source(
        "opencv-doc", "scene", "usr/share/doc/opencv-doc/examples",
        keep=[
            ("alphamat/input_images/plant.jpg", "potted plant photo"),
            ("data/aero1.jpg", "aerial photo"),
            ("data/aero3.jpg", "aerial photo"),
            ("data/aloeL.jpg", "aloe plant photo (left of a stereo pair; aloeR left out)"),
            ("data/apple.jpg", "apple photo"),
            ("data/baboon.jpg", "mandrill photo"),
            ("data/board.jpg", "circuit board photo"),
            ("data/building.jpg", "building photo"),
            ("data/butterfly.jpg", "butterfly photo"),
            ("data/chicky_512.png", "dog photo"),
            ("data/ela_original.jpg", "desk photo (ela_modified is edited: left out)"),
            ("data/fruits.jpg", "fruit photo"),
            ("data/graf1.png", "graffiti wall photo"),
            ("data/graf3.png", "graffiti wall photo, other viewpoint"),
            ("data/home.jpg", "building photo"),
            ("data/leuvenA.jpg", "street photo"),
            ("data/leuvenB.jpg", "street photo"),
            ("data/left.jpg", "desk/books photo (right.jpg: stereo twin, left out)"),
            ("data/orange.jpg", "orange photo"),
            ("data/rubberwhale1.png", "toys photo (Middlebury; rubberwhale2 is a twin)"),
            ("data/squirrel_cls.jpg", "squirrel photo"),
            ("data/stuff.jpg", "desk objects photo"),
            ("dnn_superres/butterfly.png", "butterfly close-up photo"),
            ("hfs/data/*.jpg", "bird, lake, tree photos"),
            ("reg/home.png", "house photo"),
        ],
        # Left out (reviewed): lena (licence), messi5 (press photo, licence
        # unclear), starry_night (painting), HappyFish/logos/pic*/shapes
        # (drawings), chessboards/left0*/right0* (grayscale calibration),
        # text/* and scenetext* (text images), sudoku/notes/text_* (documents),
        # licenseplate_motion (synthetic blur), smarties (render), stanford (map),
        # box*, basketball*, blox (grayscale), Blender_Suzanne (render),
        # fuzzy/input (anime drawing), LR_05/06 (document scans).
        licence_note="debian/copyright: Files: * License: Apache-2.0 AND BSD-3-Clause "
                     "(sample images not listed separately)",
    ),
    Source(
        "palapeli-data", "scene", "usr/share/palapeli/collection",
        keep=[("*.jpg", "jigsaw puzzles made from photos (castle, bridge, citrus, bee, chameleon)")],
        # backgrounds/*.jpg are generated textures: not matched by keep.
        licence_note="per-file X-KDE-PluginInfo-License in the puzzle's .desktop",
    ),
    Source(
        "tuxpaint-data", "scene", "usr/share/tuxpaint",
        keep=[
            ("templates/*.jpg", "photo backgrounds: bark, cliff, lighthouse, ocean, trees, sheep, ..."),
            ("starters/skyline-sf-dusk-back.jpeg", "photo of a palm and city skyline at dusk"),
        ],
        # Left out: starters/*.png (line-art colouring pages, frames, maps;
        # reef-back.png is a 256-colour palette image), brushes, UI images.
        licence_note="debian/copyright: Files: * License: GPL-2+",
    ),
    Source(
        "gcompris-qt-data", "scene", "usr/share/gcompris-qt/rcc",
        archive="rcc",
        source_path=lambda rel: rel.split("/", 1)[1] if rel.startswith("gcompris/") else rel,
        keep=[
            ("gcompris/src/activities/erase/resource/*.webp", "animal photos"),
            ("gcompris/src/activities/explore_monuments/resource/*.webp", "monument photos"),
            ("gcompris/src/activities/explore_world_animals/resource/animals/*.webp", "animal photos"),
            ("gcompris/src/activities/explore_farm_animals/resource/animals/*.webp", "farm animal photos"),
            ("gcompris/src/activities/explore_world_music/resource/music/*.webp", "musicians / instruments photos"),
            ("gcompris/src/activities/categorization/resource/images/tools/*", "tool photos"),
            ("gcompris/src/activities/categorization/resource/images/renewable/*", "windmill, dam, solar panel photos"),
            ("gcompris/src/activities/categorization/resource/images/monuments/*", "monument photos"),
            ("gcompris/src/activities/categorization/resource/images/fishes/*", "fish photos (aquarium / underwater)"),
            ("gcompris/src/activities/categorization/resource/images/others/*", "household object photos"),
            ("gcompris/src/activities/categorization/resource/images/numbers/*", "photo of toy blocks"),
            ("gcompris/src/activities/categorization/resource/images/alphabets/*", "photo of toy blocks"),
            ("gcompris/src/activities/clickgame/resource/sea[1-6].webp", "underwater photos"),
            *[(f"gcompris/src/activities/details/resource/image/{n}_background.webp",
               "photo of a place (its round puzzle pieces are crops: left out)")
              for n in ("Louvre_2007_02_24_c", "FanoeWindmill", "EgeskovSlotSpejling",
                        "GizahPyramids", "EilanDonanCastle", "TowerBridgeLondon", "Chenonceau",
                        "NDP", "Nagoya", "TajMahal", "TourEiffel", "Neuschwanstein",
                        "OperaSidney")],
            ("gcompris/src/activities/louis-braille/resource/fireplace.webp", "museum room photo"),
            ("gcompris/src/activities/louis-braille/resource/teach.webp", "photo of hands on a book"),
            ("gcompris/src/activities/louis-braille/resource/workshop.webp", "workshop photo"),
            ("gcompris/src/activities/louis-braille/resource/statue.webp", "statue in a park"),
            ("gcompris/src/activities/louis-braille/resource/rnib.webp", "building photo"),
        ],
        # Left out (reviewed): lang/words_sample (drawings), paintings, details
        # paintings (Van Gogh, ...) and round crops, babyshapes (paintings and
        # puzzle pieces), clickgame fish sprites, chronos (drawings),
        # solar_system/gravity (astronomy), louis-braille portrait/charts,
        # digital_electricity paper textures, all .svg/.svgz.
        licence_note="per-file DEP-5 stanzas of debian/copyright (source .jpg/.png "
                     "ship as .webp), else Files: * GPL-3+",
    ),
    Source(
        "gcompris-qt-data", "cutout", "usr/share/gcompris-qt/rcc",
        archive="rcc",
        source_path=lambda rel: rel.split("/", 1)[1] if rel.startswith("gcompris/") else rel,
        keep=[("gcompris/src/activities/leftright/resource/*.webp",
               "photographic cut-outs of hands (alpha)")],
        licence_note="per-file DEP-5 stanzas of debian/copyright",
    ),
    Source(
        "enlightenment-data", "scene", "usr/share/enlightenment/data/backgrounds",
        archive="edj",
        keep=[(f"{n}.jpg", why) for n, why in (
            ("Bamboo", "bamboo stems and leaves"),
            ("Foggy-Trees", "conifers in fog (dark)"),
            ("God-Rays", "sun rays through clouds over hills"),
            ("Green-Maple", "green maple leaves"),
            ("Lichen-Branches", "lichen on branches, red/purple background"),
            ("Mountain", "snow peak at dusk"),
            ("Peaks", "mountain peaks at dusk (dark)"),
            ("Red-Maple", "red maple leaves"),
            ("Sea-of-Lanterns", "market: heap of orange/blue paper lanterns"),
            ("Snow-Trees", "birches on snow, blue shadows"),
            ("Spruce-Needles", "spruce branch against the sky"),
            ("Sunset-Clouds", "clouds at sunset"),
            ("White-Flower", "frangipani flower and leaves"),
            ("Yellow-Flower", "yellow flower and leaves"),
        )],
        # Left out (reviewed): Dunes, Flat-Fan, Sunset-Hills (flat drawn
        # graphics), Flat-Stone-Pattern and Paper-Flower (tiled textures),
        # Squiggle* (vector patterns).
        tiles=(2, 2),
        licence_note="debian/copyright: Files: * License: BSD-2-clause (photos by "
                     "Carsten Haitzler, stored as JPEG inside the .edj; 3840x2160 "
                     "split into 2x2 crops)",
    ),
    Source(
        "lxqt-themes", "scene", "usr/share/lxqt/wallpapers",
        keep=[
            ("Butterfly-Kenneth-Wimer.jpg", "butterfly on a flower stalk"),
            ("Valendas.png", "mountain range under clouds"),
            ("after-the-rain.jpg", "sunset clouds over hills"),
            ("appleflower.png", "apple blossom, green background"),
            ("butterfly.png", "swallowtail on a thistle"),
            ("cloud.png", "sky with altocumulus clouds"),
            ("drop.png", "water drop on a grass blade"),
            ("flowers.png", "meadow flowers"),
            ("fog.jpg", "fog over a field"),
            ("this-is-not-windows.jpg", "green hills under a blue sky"),
        ],
        # Left out (reviewed): beam, kde-plasma, origami*, plasma*, simple_blue*,
        # triangles*, waves* (drawn/rendered graphics and logos).
        tiles=(2, 2),   # 2000-3000 px photos: 2x2 crops
        licence="CC-BY-SA-3.0",
        licence_note="usr/share/lxqt/wallpapers/License: CC-BY-SA-3.0 (debian/copyright "
                     "Files: * says LGPL-2.1+)",
    ),
    Source(
        "sddm-theme-maldives", "scene", "usr/share/sddm/themes/maldives",
        keep=[("background.jpg", "Maldives beach and jetty (Nevit Dilmen, Wikimedia Commons)")],
        # maldives.jpg is a screenshot of the login screen: not matched.
        licence="CC-BY-3.0",
        licence_note="debian/copyright: Files: data/themes/maldives/background.jpg License: CC-BY-3.0",
    ),
    Source(
        "renpy-demo", "scene", "usr/share/games/renpy/demo/game/images",
        keep=[
            ("bg cave.jpg", "lava tube lit orange"),
            ("bg washington.jpg", "Washington Monument across the water"),
            ("bg whitehouse.jpg", "White House and lawn"),
        ],
        # Left out (reviewed): characters, concert, logos, UI parts (drawings),
        # bg panorama (a thin strip), launcher step* (screenshots).
        licence_note="debian/copyright: Files: * License: Expat",
    ),
    Source(
        "scribus-template", "scene", "usr/share/scribus/templates",
        keep=[
            ("br2/nature.jpg", "canyon with trees and a stream"),
            ("br2/sunset.jpg", "city skyline at sunset over water"),
            ("menu1/teriyaki.png", "food: shrimp teriyaki with broccoli"),
            ("menu2/pizza.jpg", "food: pizza"),
        ],
        # Left out (reviewed): moon/halfmoon (astronomy), *-bw (grayscale),
        # template previews and other templates' graphics.
        licence="public-domain",
        licence_note="debian/copyright: Riku Leino's templates (br2, menu1, menu2, ...) "
                     "placed into the public domain by their author",
    ),
    Source(
        "qtdeclarative5-examples", "scene", "usr/lib/x86_64-linux-gnu/qt5/examples/quick",
        keep=[
            ("customitems/scrollbar/pics/niagara_falls.jpg", "Niagara Falls photo"),
            ("particles/images/backgroundLeaves.jpg", "fallen leaves photo"),
        ],
        # Left out: everything else (UI art, sprites, cork/paper textures, screenshots).
        licence_note="debian/copyright: Files: * License: LGPL-3 or GPL-2+",
    ),
    Source(
        "qtbase5-examples", "scene", "usr/lib/x86_64-linux-gnu/qt5/examples/widgets",
        keep=[
            ("graphicsview/weatheranchorlayout/images/place.jpg", "mountain lake with a chalet"),
            ("painting/composition/flower.jpg", "pink dahlia on black"),
        ],
        # Left out (reviewed): flower_alpha (its alpha mask), boxes/cubemap_*
        # (rendered sky box), puzzle/embeddeddialogs/animatedtiles images
        # (advert, textures), butterfly.png (drawing), UI art.
        licence_note="debian/copyright: Files: * License: LGPL-3 or GPL-2",
    ),
    Source(
        "gimp-help-en", "scene", "usr/share/gimp/2.0/help/en/images",
        keep=[
            ("filters/examples/distort/spherize-ex-orig.jpg", "daisies"),
            ("filters/examples/enhance/high-pass-origin.png", "chimpanzee"),
            ("filters/examples/kvitveis-orig.png", "wood anemone flower"),
            ("filters/examples/light-and-shadow/vignette-ex-orig.jpg", "squirrel in grass"),
            ("filters/examples/map/little_planet-origin.jpg", "meadow and sky"),
            ("filters/examples/taj_orig.jpg", "Taj Mahal (the .png copies are duplicates)"),
            ("tool-options/lockbrush-orig.png", "sunflower close-up"),
            ("tutorials/quickie-crop-example-source.jpg", "duck by the water"),
            ("tutorials/quickie-flip-example-source.jpg", "soldiers in red uniforms"),
            ("tutorials/quickie-remove-background-source.jpg", "yellow flower"),
            ("tutorials/quickie-rotate-example-source.jpg", "stained-glass window"),
            ("using/duck_orig.png", "ducklings on grass"),
            ("using/keyfob_orig.png", "metal key fob figure"),
            ("using/threshold-orig.png", "orange flowers"),
            ("tutorials/tone-mapping/apple-orchard-truck-from-camera.jpg",
             "truck in an orchard, straight from the camera"),
            ("tutorials/tone-mapping/power-lines.jpg", "power lines, trees, clouds"),
        ],
        # Left out (reviewed): filter/tool result images (edited), the other
        # *-orig images (drawings, shapes, screenshots), pan-project-origin
        # (equirectangular 360 projection), tone-mapping edit stages and
        # screenshots.
        licence="GFDL-NIV-1.2+",
        licence_note="its doc directory links to gimp-help-common, whose debian/copyright "
                     "says Files: * License: GFDL-NIV-1.2+",
    ),
    Source(
        "puzzle-jigsaw", "scene", "usr/share/puzzle-jigsaw/samples",
        keep=[("*.jp*g", "the 2 sample puzzle photos (tabby cat, lion)")],
        source_path=lambda rel: f"samples/{rel}",
        licence_note="debian/copyright: Files: samples/* License: CC0-1.0 (Pexels-licensed "
                     "samples are excluded from the Debian package)",
    ),
    Source(
        "stellarium-data", "scene", "usr/share/stellarium/landscapes",
        keep=[
            ("garching/garching-gl[1-4].png", "panorama tiles: rapeseed field in flower"),
            ("guereins/guereins[1-8].png", "panorama tiles: meadow, trees, farm"),
        ],
        # Left out (reviewed): hurricane (real photos, but their opaque ground
        # rows are snow only: all near-gray), *-ground/*b.png (fisheye-warped ground), fog*,
        # *-lgt/illum (light layers), grossmugl (a thin 2048 px strip),
        # ocean (flat generated water), trees (drawing), zero/geneva (no
        # image), moon/mars/planets (astronomy, renders).
        opaque_ground=True,
        licence_note="debian/copyright: Files: * License: GPL-2+; only the fully "
                     "opaque rows (the ground) of each tile are kept",
    ),
]

# Packages looked at and left out entirely (no real photos, or unusable):
REVIEWED_NOT_USED = {
    "jigzo-data": "only a font map and UI icons",
    "hugin-data": "help-page thumbnails (<=300 px, projection demos) and logos",
    "rawtherapee-data": "UI icons and logos only",
    "digikam-data": "textures, theme previews, a splash screen with a logo",
    "xfdesktop4-data": "drawn Xfce backgrounds only",
    "sddm-theme-elarun / -maui / -maya": "drawn backgrounds and screenshots",
    "wmaker-data": "no photos",
    "kanagram": "drawn backgrounds, screenshots",
    "lbreakouthd-data": "game graphics; photo-like backgrounds are processed/unclear",
    "renpy-thequestion": "drawn characters; its 4 backgrounds are renders / stylised, not photos",
    "torcs-data": "track backgrounds: terrain renders and a few repeated, retouched panoramas",
    "libreoffice-common": "vector galleries, presentation templates without photos",
    "neverball-data": "game screenshots, tiled textures",
    "calligrastage-data": "screenshots, template previews",
    "tetzle / photofilmstrip / dvd-slideshow / jigsaw-generator": "no photos (icons only)",
    "fotoxx-common": "manual images: screenshots and edit demos (before/after), no plain photos",
    "kalzium-data / kbounce / slim / fvwm-crystal / afterstep-data / sway-backgrounds /"
    " terminology-data / pyqt5-examples": "drawn or rendered art, SVG icon sets, screenshots "
    "(pyqt5-examples' photos are the qtbase5-examples ones)",
    "extremetuxracer-data": "skyboxes are renders; textures tiled",
}


# --------------------------------------------------------------------------
# Denylist / manifest validation (used by the tests too)
# --------------------------------------------------------------------------
def denied(package: str, original_path: str = "") -> str | None:
    """Reason string if (package, original_path) is an evaluation source, else None."""
    for pkg in re.split(r"[+;,\s]+", package or ""):
        if not pkg:
            continue
        if pkg in DENYLIST_PACKAGES:
            return f"package {pkg} is on the evaluation denylist"
        for g in DENYLIST_PACKAGE_GLOBS:
            if fnmatch.fnmatchcase(pkg, g):
                return f"package {pkg} matches denylisted {g}"
    low = (original_path or "").lower()
    for w in DENYLIST_PATH_WORDS:
        if w in low:
            return f"original path mentions {w}"
    return None


def validate_rows(rows) -> list[str]:
    """Problems in manifest rows (list of dicts); empty list when clean."""
    problems = []
    split_of = {r.get("file"): r.get("split") for r in rows}
    kind_of = {r.get("file"): r.get("kind") for r in rows}
    seen = set()
    for i, r in enumerate(rows):
        where = f"row {i} ({r.get('file')})"
        for c in REQUIRED_COLUMNS:
            if not str(r.get(c, "") or "").strip():
                problems.append(f"{where}: empty {c}")
        if r.get("file") in seen:
            problems.append(f"{where}: duplicate file")
        seen.add(r.get("file"))
        reason = denied(r.get("package", ""), r.get("original_path", ""))
        if reason:
            problems.append(f"{where}: {reason}")
        if r.get("kind") not in KINDS:
            problems.append(f"{where}: bad kind {r.get('kind')!r}")
        if r.get("split") not in ("train", "val"):
            problems.append(f"{where}: bad split {r.get('split')!r}")
        if r.get("kind") == "composite":
            parts = [p for p in (r.get("parts") or "").split(";") if p]
            if not parts:
                problems.append(f"{where}: composite without parts")
            if r.get("split") != "train":
                problems.append(f"{where}: composite not in train split")
            for p in parts:
                if p not in split_of:
                    problems.append(f"{where}: part {p} not in manifest")
                elif split_of[p] != "train":
                    problems.append(f"{where}: part {p} is in the {split_of[p]} split")
                elif kind_of[p] == "composite":
                    problems.append(f"{where}: part {p} is itself a composite")
    return problems


# --------------------------------------------------------------------------
# Image helpers
# --------------------------------------------------------------------------
def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8/float RGB (..., 3) in 0-255 -> CIE LAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def mean_chroma(im: Image.Image) -> float:
    """Mean LAB chroma over the (opaque) pixels of an RGB or RGBA image."""
    im = im.copy()
    im.thumbnail((128, 128))
    arr = np.asarray(im.convert("RGBA"))
    rgb, alpha = arr[..., :3], arr[..., 3]
    mask = alpha >= 128
    if not mask.any():
        return 0.0
    lab = srgb_to_lab(rgb[mask])
    return float(np.sqrt(lab[:, 1] ** 2 + lab[:, 2] ** 2).mean())


def is_near_gray(im: Image.Image, threshold: float = MIN_CHROMA) -> bool:
    return mean_chroma(im) < threshold


def _hash_gray(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        im = Image.alpha_composite(bg, rgba)
    return im.convert("L")


def dhash(im: Image.Image) -> int:
    g = np.asarray(_hash_gray(im).resize((9, 8), Image.BILINEAR), dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def ahash(im: Image.Image) -> int:
    g = np.asarray(_hash_gray(im).resize((8, 8), Image.BILINEAR), dtype=np.float64)
    bits = (g > g.mean()).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def thumb(im: Image.Image) -> np.ndarray:
    """16x16 RGB thumbnail (transparent parts on mid-gray), float32."""
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (128, 128, 128, 255)), rgba)
    return np.asarray(im.convert("RGB").resize((16, 16), Image.BILINEAR), dtype=np.float32)


@dataclass
class Fingerprint:
    ahash: int
    dhash: int
    thumb: np.ndarray

    @classmethod
    def of(cls, im: Image.Image) -> "Fingerprint":
        return cls(ahash(im), dhash(im), thumb(im))

    def distance(self, other: "Fingerprint") -> tuple:
        """(dhash bits, ahash bits, mean abs thumbnail difference)."""
        return (hamming(self.dhash, other.dhash), hamming(self.ahash, other.ahash),
                float(np.abs(self.thumb - other.thumb).mean()))


def near_duplicate(a: Fingerprint, b: Fingerprint, dmax=DHASH_DUP, amax=AHASH_DUP,
                   tmax=THUMB_DUP) -> bool:
    dd, da, dt = a.distance(b)
    return dd <= dmax and da <= amax and dt <= tmax


class Deduper:
    """Exact (sha256 of the source bytes) and near (perceptual) duplicates."""

    def __init__(self):
        self.sha = {}
        self.prints = []   # (key, Fingerprint)

    def check(self, key: str, data: bytes, im: Image.Image) -> str | None:
        """None if new (and remember it), else a reason naming the earlier copy."""
        h = hashlib.sha256(data).hexdigest()
        if h in self.sha:
            return f"exact duplicate of {self.sha[h]}"
        fp = Fingerprint.of(im)
        for k2, fp2 in self.prints:
            if near_duplicate(fp, fp2):
                return f"near duplicate of {k2}"
        self.sha[h] = key
        self.prints.append((key, fp))
        return None


class EvalChecker:
    """Drops images perceptually close to a photo of an evaluation folder."""

    def __init__(self, folder: Path | None):
        self.items = []
        self.folder = folder
        if folder is None:
            return
        for p in sorted(Path(folder).rglob("*")):
            if p.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"):
                continue
            try:
                with Image.open(p) as im:
                    im = ImageOps.exif_transpose(im).convert("RGB")
                    for v in (im, ImageOps.mirror(im)):
                        self.items.append((p.name, Fingerprint.of(v)))
            except Exception:   # noqa: BLE001 - unreadable file: nothing to compare
                continue

    def match(self, im: Image.Image) -> str | None:
        fp = Fingerprint.of(im)
        for name, fp2 in self.items:
            if near_duplicate(fp, fp2, EVAL_DHASH, EVAL_AHASH, EVAL_THUMB):
                dd, da, dt = fp.distance(fp2)
                return f"matches evaluation photo {name} (dhash {dd}, ahash {da}, thumb {dt:.1f})"
        return None


def to_srgb(im: Image.Image) -> Image.Image:
    """Convert an embedded non-sRGB ICC profile to sRGB (no-op otherwise)."""
    icc = im.info.get("icc_profile")
    if not icc:
        return im
    try:
        from PIL import ImageCms
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = (ImageCms.getProfileDescription(src) or "").lower()
        if "srgb" in desc:
            return im
        mode = "RGBA" if im.mode in ("RGBA", "LA", "PA", "P") and im.mode != "RGB" else "RGB"
        im = im.convert(mode)
        return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode=mode)
    except Exception:   # noqa: BLE001 - broken profile: keep pixels as they are
        return im


def load_image(path: Path, kind: str) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        im = to_srgb(im)
        if kind == "cutout":
            return im.convert("RGBA")
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")   # a scene with transparency: flatten on white
            return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
        return im.convert("RGB")


def prepare_cutout(im: Image.Image) -> Image.Image | None:
    """Trim to the alpha bbox; None if there is no real transparency."""
    alpha = np.asarray(im.getchannel("A"))
    if alpha.min() >= 250:
        return None
    a = im.getchannel("A").point(lambda v: 255 if v >= 8 else 0)
    box = a.getbbox()
    if box is None:
        return None
    return im.crop(box)


def fit(im: Image.Image, longest: int) -> Image.Image:
    if max(im.size) <= longest:
        return im
    s = longest / max(im.size)
    size = (max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s)))
    if im.mode == "RGBA":
        # resize premultiplied so transparent pixels' colour does not bleed
        return im.convert("RGBa").resize(size, Image.LANCZOS).convert("RGBA")
    return im.resize(size, Image.LANCZOS)


def save_jpeg(im: Image.Image, path: Path):
    im.convert("RGB").save(path, "JPEG", quality=95, subsampling=0, optimize=False)


def save_png(im: Image.Image, path: Path):
    im.save(path, "PNG", optimize=False)


def split_of(package: str, original_path: str) -> str:
    """Split by source file: crops ('...#tile-r0c1') follow their photo."""
    original_path = original_path.split("#tile-", 1)[0]
    h = hashlib.sha256(f"{package}:{original_path}".encode()).hexdigest()
    return "val" if int(h[:8], 16) % 100 < VAL_PERCENT else "train"


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def safe_name(package: str, rel: str) -> str:
    stem = re.sub(r"\.[A-Za-z0-9]+$", "", rel)
    stem = re.sub(r"^gcompris/src/activities/", "", stem).replace("/resource/", "/")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__"))
    short = {"tuxpaint-stamps-default": "tuxpaint", "kphotoalbum": "kphotoalbum",
             "opencv-doc": "opencv", "palapeli-data": "palapeli", "tuxpaint-data": "tuxpaintdata",
             "gcompris-qt-data": "gcompris", "enlightenment-data": "enlightenment",
             "lxqt-themes": "lxqt", "sddm-theme-maldives": "sddm",
             "stellarium-data": "stellarium", "renpy-demo": "renpy",
             "scribus-template": "scribus", "qtdeclarative5-examples": "qtquick",
             "qtbase5-examples": "qtwidgets", "gimp-help-en": "gimphelp",
             "puzzle-jigsaw": "puzzlejigsaw"}.get(package, package)
    return f"{short}__{stem}"


# --------------------------------------------------------------------------
# Packages
# --------------------------------------------------------------------------
def deb_for(package: str, cache: Path, offline: bool) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if not found:
        if offline:
            raise SystemExit(f"{package}: no .deb in {cache} and --offline given")
        print(f"downloading {package} ...", file=sys.stderr)
        subprocess.run(["apt-get", "download", package], cwd=cache, check=True,
                       stdout=subprocess.DEVNULL)
        found = sorted(cache.glob(f"{package}_*.deb"))
    if len(found) > 1:
        # several versions cached: use the newest by dpkg's ordering
        def ver(p):
            return dpkg_field(p, "Version")
        best = found[0]
        for p in found[1:]:
            r = subprocess.run(["dpkg", "--compare-versions", ver(p), "gt", ver(best)])
            if r.returncode == 0:
                best = p
        return best
    return found[0]


def dpkg_field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], check=True,
                          capture_output=True, text=True).stdout.strip()


def unpack(deb: Path, tree_root: Path) -> Path:
    pkg, ver = dpkg_field(deb, "Package"), dpkg_field(deb, "Version")
    dest = tree_root / f"{pkg}_{ver.replace(':', '%3a')}"
    stamp = dest / ".unpacked"
    if not stamp.exists():
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
        stamp.write_text(deb.name + "\n")
    return dest


def copyright_licence(tree: Path, package: str) -> str:
    """Short licence of the package from usr/share/doc/PKG/copyright."""
    p = tree / "usr/share/doc" / package / "copyright"
    text = p.read_text(errors="replace")
    # DEP-5: the License of the 'Files: *' stanza
    m = re.search(r"^Files:\s*\*\s*$.*?^License:\s*(.+?)\s*$", text, re.M | re.S)
    if m:
        return m.group(1).strip()
    low = " ".join(text.split()).lower()
    if "version 2 of the license, or (at your option) any later version" in low:
        return "GPL-2+"
    if "version 2 of the license" in low:
        return "GPL-2"
    m = re.search(r"^License:\s*(\S.+)$", text, re.M)
    return m.group(1).strip() if m else "see copyright"


def dep5_stanzas(text: str) -> list:
    """[(patterns, short licence)] of the Files stanzas of a DEP-5 copyright file."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        m = re.search(r"^Files:(.*?)(?=^\S)", para + "\nEnd:", re.M | re.S)
        lic = re.search(r"^License:[ \t]*(\S[^\n]*)", para, re.M)
        if m and lic:
            out.append((m.group(1).split(), lic.group(1).strip()))
    return out


def _noext(p: str) -> str:
    return re.sub(r"\.[A-Za-z0-9]+$", "", p)


def dep5_licence(stanzas: list, path: str) -> str | None:
    """Licence of ``path`` (a source-tree path): last matching stanza wins.

    Extensions are ignored when both sides have one, since some packages
    convert images at build time (gcompris ships its .jpg/.png as .webp)."""
    found = None
    for pats, lic in stanzas:
        for pat in pats:
            if fnmatch.fnmatchcase(path, pat) or (
                    "." in pat.rsplit("/", 1)[-1] and not pat.endswith("*")
                    and fnmatch.fnmatchcase(_noext(path), _noext(pat))):
                found = lic
                break
    return found


PALAPELI_LICENCES = {"public domain": "public-domain", "fdl": "GFDL", "gnu-fdl": "GFDL"}


_DEP5_CACHE = {}


def file_licence(src: Source, tree: Path, rel: str, package_licence: str) -> str:
    if src.source_path is not None:
        cp = tree / "usr/share/doc" / src.package / "copyright"
        if cp not in _DEP5_CACHE:
            _DEP5_CACHE[cp] = dep5_stanzas(cp.read_text(errors="replace"))
        lic = dep5_licence(_DEP5_CACHE[cp], src.source_path(rel))
        if lic:
            return lic
    if src.package == "palapeli-data":
        desk = tree / src.root / (Path(rel).stem + ".desktop")
        if desk.exists():
            m = re.search(r"^X-KDE-PluginInfo-License=(.+)$", desk.read_text(errors="replace"), re.M)
            if m:
                lic = m.group(1).strip()
                return PALAPELI_LICENCES.get(lic.lower(), lic)
    return package_licence


def kphotoalbum_angles(tree: Path, src: Source) -> dict:
    """KPhotoAlbum keeps rotations in its database (index.xml), not in EXIF."""
    idx = tree / src.root / "index.xml"
    if not idx.exists():
        return {}
    import xml.etree.ElementTree as ET
    out = {}
    for el in ET.parse(idx).iter("image"):
        a = int(el.get("angle", "0") or 0) % 360
        if a:
            out[el.get("file")] = a
    return out


def extra_rotation(src: Source, tree: Path) -> dict:
    """rel path -> clockwise degrees to apply after EXIF orientation."""
    if src.package == "kphotoalbum":
        return kphotoalbum_angles(tree, src)
    return {}


def matches(rel: str, globs) -> tuple | None:
    for g, reason in globs:
        if fnmatch.fnmatchcase(rel, g):
            return (g, reason)
    return None


def extract_rcc(tree: Path, src: Source) -> dict:
    """Unpack the image members of the .rcc archives under src.root into
    tree/_rcc/; returns {member path: archive file name}."""
    sys.path.insert(0, str(HERE))
    from qt_rcc import read_rcc
    dest = tree / "_rcc"
    index = dest / ".index.csv"
    if not index.exists():
        members = {}
        for rcc in sorted((tree / src.root).glob("*.rcc")):
            for inner, blob in read_rcc(rcc.read_bytes()):
                if inner.lower().endswith((".jpg", ".jpeg", ".png", ".webp")):
                    out = dest / inner
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(blob)
                    members[inner] = rcc.name
        dest.mkdir(parents=True, exist_ok=True)
        with open(index, "w", newline="") as fh:
            csv.writer(fh).writerows(sorted(members.items()))
    with open(index, newline="") as fh:
        return {k: v for k, v in csv.reader(fh)}


EET_MAGIC = 0x1ee70f42


def eet_entries(data: bytes):
    """(name, bytes) of the entries of an Eet file (format 2, as written by
    edje_cc); compressed or ciphered entries are skipped (images are not)."""
    import struct
    magic, ndir, _ndict = struct.unpack_from(">III", data, 0)
    if magic != EET_MAGIC:
        raise ValueError(f"not an Eet file (magic {magic:#x})")
    for i in range(ndir):
        off, size, _dsize, noff, nsize, flag = struct.unpack_from(">6I", data, 12 + 24 * i)
        name = data[noff:noff + nsize].split(b"\0")[0].decode("utf-8", "replace")
        if flag & 0x3:   # compressed / ciphered
            continue
        yield name, data[off:off + size]


def extract_edj(tree: Path, src: Source) -> dict:
    """Write the largest JPEG image of each .edj under src.root to
    tree/_edj/<stem>.jpg; returns {<stem>.jpg: '<stem>.edj:<entry>'}."""
    dest = tree / "_edj"
    index = dest / ".index.csv"
    if not index.exists():
        dest.mkdir(parents=True, exist_ok=True)
        members = {}
        for edj in sorted((tree / src.root).glob("*.edj")):
            best = None
            for name, blob in eet_entries(edj.read_bytes()):
                if not (name.startswith("edje/images/") and blob[:3] == b"\xff\xd8\xff"):
                    continue
                with Image.open(io.BytesIO(blob)) as im:
                    area = im.size[0] * im.size[1]
                if best is None or area > best[0]:
                    best = (area, name, blob)
            if best:
                (dest / f"{edj.stem}.jpg").write_bytes(best[2])
                members[f"{edj.stem}.jpg"] = f"{edj.name}:{best[1]}"
        with open(index, "w", newline="") as fh:
            csv.writer(fh).writerows(sorted(members.items()))
    with open(index, newline="") as fh:
        return {k: v for k, v in csv.reader(fh)}


def opaque_ground(path: Path) -> Image.Image | None:
    """RGB crop of the fully opaque rows of a panorama tile (the sky is
    transparent); None if there are none."""
    with Image.open(path) as im:
        im = im.convert("RGBA")
    alpha = np.asarray(im.getchannel("A"))
    rows = np.where((alpha >= 250).mean(axis=1) >= 0.995)[0]
    if not len(rows):
        return None
    return im.crop((0, int(rows.min()), im.size[0], int(rows.max()) + 1)).convert("RGB")


def tile_crops(im: Image.Image, tiles) -> list:
    """[(suffix, crop)]: the image itself, or a cols x rows grid of crops."""
    if not tiles:
        return [("", im)]
    cols, rows = tiles
    W, H = im.size
    out = []
    for r in range(rows):
        for c in range(cols):
            box = (W * c // cols, H * r // rows, W * (c + 1) // cols, H * (r + 1) // rows)
            out.append((f"#tile-r{r}c{c}", im.crop(box)))
    return out


def source_base(src: Source, tree: Path) -> Path:
    if src.archive == "rcc":
        return tree / "_rcc"
    if src.archive == "edj":
        return tree / "_edj"
    return tree / src.root


def select(src: Source, tree: Path):
    """Yield (rel, keep_reason) for reviewed files of a source, sorted."""
    base = source_base(src, tree)
    rels = sorted(str(p.relative_to(base)) for p in base.rglob("*")
                  if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    for rel in rels:
        f = matches(rel, src.force)
        if f:
            yield rel, f[1]
            continue
        k = matches(rel, src.keep)
        if k and not matches(rel, src.drop):
            yield rel, k[1]


# --------------------------------------------------------------------------
# Composites
# --------------------------------------------------------------------------
def make_composites(rng, scenes, cutouts, n, out_dir: Path):
    """scenes/cutouts: lists of (relfile, Image).  Returns list of (name, img, parts)."""
    res = []
    if not scenes or not cutouts or n <= 0:
        return res
    for i in range(n):
        s_file, s_im = scenes[int(rng.integers(len(scenes)))]
        W0, H0 = s_im.size
        frac = rng.uniform(0.6, 1.0)
        cw, ch = max(8, int(W0 * frac)), max(8, int(H0 * frac))
        x0 = int(rng.integers(0, W0 - cw + 1))
        y0 = int(rng.integers(0, H0 - ch + 1))
        longest = int(rng.integers(384, 513))
        s = longest / max(cw, ch)
        size = (max(1, round(cw * s)), max(1, round(ch * s)))
        bg = s_im.crop((x0, y0, x0 + cw, y0 + ch)).resize(size, Image.LANCZOS)
        canvas = np.asarray(bg, dtype=np.float32).copy()
        W, H = size
        k = int(rng.integers(1, 4))
        idx = [i % len(cutouts)] + [int(rng.integers(len(cutouts))) for _ in range(k - 1)]
        parts = [s_file]
        for j in idx:
            c_file, c_im = cutouts[j]
            target = rng.uniform(0.15, 0.60) * min(W, H)
            sc = target / max(c_im.size)
            csz = (max(2, round(c_im.size[0] * sc)), max(2, round(c_im.size[1] * sc)))
            c = c_im.convert("RGBa").resize(csz, Image.LANCZOS).convert("RGBA")
            if rng.random() < 0.5:
                c = ImageOps.mirror(c)
            px = int(rng.integers(0, max(1, W - csz[0] + 1)))
            py = int(rng.integers(0, max(1, H - csz[1] + 1)))
            arr = np.asarray(c, dtype=np.float32)
            w, h = min(csz[0], W - px), min(csz[1], H - py)
            a = arr[:h, :w, 3:4] / 255.0
            region = canvas[py:py + h, px:px + w]
            canvas[py:py + h, px:px + w] = region * (1 - a) + arr[:h, :w, :3] * a
            parts.append(c_file)
        img = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), "RGB")
        res.append((f"composites/composite_{i:05d}.jpg", img, parts))
    return res


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------
def default_check_dir() -> Path | None:
    p = (REPO / ".." / "shared" / "data" / "photos-dev").resolve()
    return p if p.is_dir() else None


def write_split_lists(out: Path, rows: list) -> None:
    """train.txt (train scenes + composites) and val.txt (val scenes): the load step's list files."""
    train = [r["file"] for r in rows if r["split"] == "train" and r["kind"] in ("scene", "composite")]
    val = [r["file"] for r in rows if r["split"] == "val" and r["kind"] == "scene"]
    (out / "train.txt").write_text("\n".join(train) + "\n")
    (out / "val.txt").write_text("\n".join(val) + "\n")


def build(args) -> dict:
    out = Path(args.out)
    cache = Path(args.cache)
    debs = cache / "debs"
    trees = cache / "tree"
    check_dir = None if args.no_check else (Path(args.check_against) if args.check_against
                                             else default_check_dir())
    checker = EvalChecker(check_dir)
    rows, dropped = [], []
    dedupe = Deduper()
    kept_images = {"scene": [], "cutout": []}   # (file, Image, split)
    for d in ("scenes", "cutouts", "composites"):
        (out / d).mkdir(parents=True, exist_ok=True)
    written = set()
    packages = {}

    for src in SOURCES:
        reason = denied(src.package)
        if reason:
            raise SystemExit(f"refusing source {src.package}: {reason}")
        deb = deb_for(src.package, debs, args.offline)
        version = dpkg_field(deb, "Version")
        tree = unpack(deb, trees)
        pkg_lic = src.licence or copyright_licence(tree, src.package)
        packages[src.package] = (version, pkg_lic)
        rotate = extra_rotation(src, tree)
        members = (extract_rcc(tree, src) if src.archive == "rcc" else
                   extract_edj(tree, src) if src.archive == "edj" else {})
        base = source_base(src, tree)
        for rel, why in select(src, tree):
            original = (f"/{src.root}/{members[rel]}:/{rel}" if src.archive == "rcc"
                        else f"/{src.root}/{members[rel]}" if src.archive == "edj"
                        else f"/{src.root}/{rel}")
            r = denied(src.package, original)
            if r:
                dropped.append((src.package, original, r))
                continue
            path = base / rel
            data = path.read_bytes()
            try:
                if src.opaque_ground:
                    im = opaque_ground(path)
                    if im is None:
                        dropped.append((src.package, original, "no opaque ground rows"))
                        continue
                else:
                    im = load_image(path, src.kind)
                if rel in rotate:   # clockwise degrees
                    im = im.rotate(-rotate[rel], expand=True)
            except Exception as e:   # noqa: BLE001
                dropped.append((src.package, original, f"unreadable: {e}"))
                continue
            if src.kind == "cutout":
                im = prepare_cutout(im)
                if im is None:
                    dropped.append((src.package, original, "no transparency: not a cut-out"))
                    continue
            if src.tiles:
                # the whole photo against the evaluation set too (crops alone
                # would not match a full-frame copy there)
                m = checker.match(im)
                if m:
                    dropped.append((src.package, original, m))
                    continue
            for suffix, piece in tile_crops(im, src.tiles):
                orig = original + suffix
                if min(piece.size) < MIN_SIDE[src.kind]:
                    dropped.append((src.package, orig,
                                    f"too small {piece.size[0]}x{piece.size[1]}"))
                    continue
                ch = mean_chroma(piece)
                if ch < MIN_CHROMA:
                    dropped.append((src.package, orig, f"near-gray (mean chroma {ch:.1f})"))
                    continue
                m = checker.match(piece)
                if m:
                    dropped.append((src.package, orig, m))
                    continue
                dup = dedupe.check(orig, data + suffix.encode(), piece)
                if dup:
                    dropped.append((src.package, orig, dup))
                    continue
                name = safe_name(src.package, rel)
                if suffix:
                    name += "__" + suffix.split("#tile-", 1)[1]
                if src.kind == "scene":
                    piece = fit(piece, SCENE_MAX)
                    f = f"scenes/{name}.jpg"
                    save_jpeg(piece, out / f)
                else:
                    piece = fit(piece, CUTOUT_MAX)
                    f = f"cutouts/{name}.png"
                    save_png(piece, out / f)
                written.add(f)
                split = split_of(src.package, orig)
                rows.append(dict(file=f, package=src.package, package_version=version,
                                 original_path=orig,
                                 licence=src.licence or file_licence(src, tree, rel, pkg_lic),
                                 kind=src.kind, split=split, sha256=sha256_file(out / f),
                                 width=piece.size[0], height=piece.size[1], parts=""))
                kept_images[src.kind].append((f, piece, split))

    row_of = {r["file"]: r for r in rows}
    train_scenes = [(f, im) for f, im, s in kept_images["scene"] if s == "train"]
    train_cuts = [(f, im) for f, im, s in kept_images["cutout"] if s == "train"]
    n = args.composites * len(train_cuts)
    rng = np.random.default_rng(args.seed)
    for f, img, parts in make_composites(rng, train_scenes, train_cuts, n, out / "composites"):
        save_jpeg(img, out / f)
        written.add(f)
        pk = sorted({row_of[p]["package"] for p in parts})
        rows.append(dict(
            file=f, package="+".join(pk),
            package_version="+".join(packages[p][0] for p in pk),
            original_path=f"composite(seed={args.seed})",
            licence=" AND ".join(sorted({row_of[p]["licence"] for p in parts})),
            kind="composite", split="train", sha256=sha256_file(out / f),
            width=img.size[0], height=img.size[1], parts=";".join(parts)))

    # remove stale outputs from earlier runs
    for d in ("scenes", "cutouts", "composites"):
        for p in (out / d).iterdir():
            if f"{d}/{p.name}" not in written:
                p.unlink()

    problems = validate_rows(rows)
    if problems:
        raise SystemExit("manifest problems:\n" + "\n".join(problems[:50]))
    write_csv(out / "manifest.csv", rows)
    write_split_lists(out, rows)
    with open(out / "dropped.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["package", "original_path", "reason"])
        w.writerows(dropped)
    if not args.no_commit_copy:
        write_csv(HERE / "manifest.csv", rows)
    summary = summarize(rows, dropped, packages, out, check_dir, args)
    print(summary)
    if not args.no_commit_copy:
        (HERE / "SUMMARY.md").write_text(summary)
    return dict(rows=rows, dropped=dropped)


def write_csv(path: Path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def summarize(rows, dropped, packages, out: Path, check_dir, args) -> str:
    counts = Counter((r["package"] if r["kind"] != "composite" else "(composites)",
                      r["kind"], r["split"]) for r in rows)
    sizes = defaultdict(int)
    for r in rows:
        p = out / r["file"]
        if p.exists():
            sizes[r["kind"]] += p.stat().st_size
    lines = ["# Corpus summary", "",
             f"Command: `python tools/corpus/build_corpus.py --out {args.out}`"
             f" (seed {args.seed}, {args.composites} composites per train cut-out)", "",
             "| package | version | licence | kind | train | val |", "|---|---|---|---|---|---|"]
    keys = sorted({(k[0], k[1]) for k in counts})
    lics = defaultdict(Counter)
    for r in rows:
        if r["kind"] != "composite":
            lics[(r["package"], r["kind"])][r["licence"]] += 1
    for pkg, kind in keys:
        ver, _ = packages.get(pkg, ("", ""))
        c = lics[(pkg, kind)]
        lic = "; ".join(f"{k} ({v})" if len(c) > 1 else k for k, v in sorted(c.items()))
        if pkg == "(composites)":
            lic = "licences of the parts"
        lines.append(f"| {pkg} | {ver} | {lic} | {kind} | {counts[(pkg, kind, 'train')]} "
                     f"| {counts[(pkg, kind, 'val')]} |")
    kc = Counter(r["kind"] for r in rows)
    lines += ["", "Totals: " + ", ".join(
        f"{k} {kc[k]} ({sizes[k] / 1e6:.1f} MB)" for k in KINDS), ""]
    shown = None
    if check_dir:  # name it relative to the repository (no machine paths in the summary)
        try:
            shown = os.path.relpath(Path(check_dir).resolve(), REPO)
        except ValueError:
            shown = Path(check_dir).name
    lines.append(f"Evaluation-photo check against {shown}: no match" if shown else "Evaluation-photo check: not run")
    dc = Counter(re.split(r" \(| of | [0-9]", d[2])[0] for d in dropped)
    lines += ["", f"Dropped by filters: {len(dropped)} (see dropped.csv): " +
              ", ".join(f"{k} {v}" for k, v in sorted(dc.items())), ""]
    for d in dropped:
        lines.append(f"- {d[0]} `{d[1]}`: {d[2]}")
    lines += ["", "Packages reviewed and not used:"]
    lines += [f"- {k}: {v}" for k, v in REVIEWED_NOT_USED.items()]
    lines += ["", "Never used (evaluation only): " + ", ".join(sorted(DENYLIST_PACKAGES)) +
              ", " + ", ".join(DENYLIST_PACKAGE_GLOBS), ""]
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "data" / "corpus"))
    ap.add_argument("--cache", default=str(REPO / "data" / "corpus-cache"),
                    help="download cache; .debs go to CACHE/debs, unpacked trees to CACHE/tree")
    ap.add_argument("--composites", type=int, default=2, help="composites per train cut-out")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--check-against", default=None,
                    help="folder of evaluation photos to keep out "
                         "(default ../shared/data/photos-dev when present)")
    ap.add_argument("--no-check", action="store_true", help="skip the evaluation-photo check")
    ap.add_argument("--offline", action="store_true", help="fail instead of downloading")
    ap.add_argument("--no-commit-copy", action="store_true",
                    help="do not update tools/corpus/manifest.csv and SUMMARY.md")
    return ap.parse_args(argv)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    build(parse_args())
