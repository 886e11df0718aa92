"""Photos of other things from Debian packages (clip art, stamps, icons, desktop wallpapers), re-photographed: the
outliers the open-set detector is fitted on (bench/openset.py), never evaluated as one of photos.py's families.

Sources (`apt-get install` PACKAGES): openclipart's PNGs (clip art of everyday things, symbols, people, food, icons,
flags, ...), Tux Paint's stamps (photos and drawings of food, fruit, coins, tools, instruments, houses, flowers,
letters, ...), Oxygen's 256 px icons (devices, documents, apps: photo-like renderings of objects) and the wallpapers'
photos and artwork (flowers, meadows, mountains, abstract art). Disjoint from the evaluation's families by source: no
scikit-image or matplotlib picture, no LFW face, none of photos.py's generators. Anything that may show one of the
ten classes is left out: openclipart's animals/ and transportation/ folders and Tux Paint's animals/ and vehicles/
whole, any file whose name has a word for one of them (EXCLUDED_WORDS, English and the Italian of many openclipart
names), and the wallpapers looked at and found to show a bird or dogs (EXCLUDED_WALLPAPERS)."""
from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

from PIL import Image

from .photos import Photo, jpeg, rephotograph

PACKAGES = ("openclipart-png", "tuxpaint-stamps-default", "oxygen-icon-theme", "mate-backgrounds", "ukui-wallpapers",
            "gnome-backgrounds", "lomiri-wallpapers")
# Debian bookworm's (428 MB of .debs); .ci/run installs them. The wallpapers are every picture under WALLPAPER_DIR
CLIPART_DIR = Path("/usr/share/openclipart/png")
STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
ICONS_DIR = Path("/usr/share/icons/oxygen/base/256x256")
WALLPAPER_DIR = Path("/usr/share/backgrounds")
EXCLUDED_FOLDERS = ("animals", "transportation", "vehicles")  # openclipart's, Tux Paint's: the ten classes' home
EXCLUDED_WORDS = (  # a file name word equal to (or, from 4 letters, starting with) one of these is left out
    "airplane", "aeroplane", "plane", "aircraft", "airliner", "jet", "jumbo", "aereo", "aeroplano",
    "car", "cars", "auto", "autos", "automobile", "sportcar", "taxi", "jeep", "van", "limo", "macchina", "hummer",
    "bird", "birds", "uccello", "parrot", "eagle", "owl", "duck", "chicken", "hen", "rooster", "penguin", "pinguino",
    "cat", "cats", "kitten", "kitty", "gatto", "gatti", "deer", "reindeer", "elk", "moose", "bambi", "cervo",
    "dog", "dogs", "puppy", "cane", "cani", "frog", "toad", "rana", "horse", "pony", "cavallo", "unicorn",
    "ship", "boat", "yacht", "sail", "sailboat", "ferry", "nave", "barca", "titanic", "truck", "lorry", "camion",
    "tractor", "tank", "animal", "animals", "pet",
    "bluebird", "chick", "blackcat", "docks", "fishery")  # Tux Paint's stamps: birds, a cat, boats maybe
EXCLUDED_WALLPAPERS = ("Kleiber_by_Lukas_Baubkus", "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
                       "Elephants_3840x2160", "Elephants_5640x3172")  # a nuthatch, a bird, two dogs; two copies
PER_FOLDER = 150  # clip art files at most from one openclipart folder and its subfolders, two levels deep (icons,
# stars and flags would fill the rest)
MAX_PIXELS = 40_000_000  # larger pictures are skipped (a few of openclipart's: seconds each to decode)
WALLPAPER_VIEWS = 12  # photos of each wallpaper: different crops of a large picture
PICTURE_VIEWS = 2  # photos of each stamp and icon (~600 of each; openclipart's 3,000 files: one each)


def _excluded(path: Path) -> bool:
    words = [w for w in re.split(r"[^a-z]+", path.stem.lower()) if w]
    return any(w == x or (len(x) >= 4 and w.startswith(x)) for w in words for x in EXCLUDED_WORDS)


def clipart_files(root: Path = CLIPART_DIR) -> list[Path]:
    """The PNGs under `root` (openclipart's, Tux Paint's stamps, Oxygen's icons) that show none of the ten classes,
    at most PER_FOLDER a folder (two levels deep), sorted."""
    kept, per_folder = [], {}
    for path in sorted(root.rglob("*.png")):
        relative = path.relative_to(root)
        if any(part in EXCLUDED_FOLDERS for part in relative.parts[:-1]) or _excluded(path):
            continue
        folder = relative.parts[:2] if len(relative.parts) > 2 else relative.parts[:1]
        per_folder[folder] = per_folder.get(folder, 0) + 1
        if per_folder[folder] <= PER_FOLDER:
            kept.append(path)
    return kept


def wallpaper_files(root: Path = WALLPAPER_DIR) -> list[Path]:
    """The wallpapers' JPEG, PNG and WebP pictures, without EXCLUDED_WALLPAPERS, sorted."""
    return [p for p in sorted(root.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")
            and p.stem not in EXCLUDED_WALLPAPERS and not _excluded(p)]


def _open(path: Path, rng: random.Random, longest: int = 1024) -> Image.Image:
    """RGB, at most `longest` px: transparent pixels over white or over a random paper colour."""
    with warnings.catch_warnings():  # a picture over Pillow's warning size is skipped below, not decoded
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path)
    if image.width * image.height > MAX_PIXELS:
        raise ValueError(f"{path.name}: {image.width} x {image.height} px")
    image.draft("RGB", (longest, longest))  # JPEG: decode at a reduced scale
    image.thumbnail((longest, longest))
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
        paper = (255, 255, 255) if rng.random() < 0.6 else tuple(rng.randint(0, 255) for _ in range(3))
        image = Image.alpha_composite(Image.new("RGBA", image.size, paper + (255,)), image)
    return image.convert("RGB")


def photograph(picture: Image.Image, rng: random.Random) -> Image.Image:
    """One photo of a picture: a square-ish crop of 40-100% of its shorter side, then re-photographed as the
    in-class CIFAR-10 images are (photos.rephotograph: 96-320 px, recoloured, rotated, framed, blurred, JPEG), or,
    one time in five, as a 32 px thumbnail as it is (like the CIFAR-10 images the tab's examples are). The crop is
    shrunk to 32 px first, as the CIFAR-10 images are, so that sharpness alone does not tell the two apart."""
    w, h = picture.size
    side = max(1, round(min(w, h) * rng.uniform(0.4, 1.0)))
    cw, ch = min(w, round(side * rng.uniform(0.8, 1.25))), side
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    crop = picture.crop((left, top, left + cw, top + ch))
    if rng.random() < 0.2:
        return jpeg(crop.resize((32, 32), Image.BICUBIC), 95)
    return rephotograph(crop.resize((32, 32), Image.BICUBIC), rng)  # 32 px first: the in-class images' detail


def photos_of(files: list[Path], seed: int) -> list[Photo]:
    """Photos of each file, family "registry photos": one of an openclipart file, PICTURE_VIEWS of a stamp or an
    icon, WALLPAPER_VIEWS of a wallpaper (a large picture); files that cannot be read, or over MAX_PIXELS, are
    skipped."""
    rng, out = random.Random(seed), []
    for path in files:
        try:
            picture = _open(path, rng)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        views = WALLPAPER_VIEWS if path.is_relative_to(WALLPAPER_DIR) else 1 if path.is_relative_to(CLIPART_DIR) \
            else PICTURE_VIEWS
        out += [Photo(photograph(picture, rng), "registry photos", None) for _ in range(views)]
    return out


def split(seed: int = 0, held_share: float = 0.15) -> tuple[list[Path], list[Path]]:
    """(fit files, held-out files): each source's files shuffled by `seed`, `held_share` of them held out, so that
    no held-out photo comes from a picture the detector was fitted on."""
    fit, held = [], []
    for files in (clipart_files(), clipart_files(STAMPS_DIR), clipart_files(ICONS_DIR), wallpaper_files()):
        files = files[:]
        random.Random(seed).shuffle(files)
        cut = round(len(files) * held_share)
        held += files[:cut]
        fit += files[cut:]
    return fit, held


def available() -> bool:
    """Whether the packages' pictures are installed here."""
    return any(d.is_dir() for d in (CLIPART_DIR, STAMPS_DIR, ICONS_DIR, WALLPAPER_DIR))
