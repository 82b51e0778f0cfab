"""Render the ``glyphs-han`` dataset: Han ideographs as identities, typefaces as their "photos".

Identity = one CJK unified ideograph; its images = that character drawn by many typefaces from Debian's font
packages (Ming/Song, Kai, Gothic, brush, handwriting...), each aligned like a face crop (the ink box scaled to a
fixed size and centred) with a small seeded jitter of scale and position. A face that lacks the character is
skipped: either its cmap has no entry, or the glyph it draws is empty or identical to what it draws for a
code point no font assigns (the ``.notdef`` box).

The output (``scoremix_ds/default/glyphs-han/``) is a ``datasets`` parquet folder with two DISJOINT identity sets,
``train`` and ``verify`` (splits of one config), and a README card that lists every typeface with its family,
version, licence and the Debian package it came from. The same font packages give the same bytes::

    make glyph-fonts        # apt-get install the font packages (root, once)
    make glyphs             # python tools/render_glyphs.py --out scoremix_ds/default/glyphs-han

This is a maintainer's tool (it needs the fonts installed); users of scoremix-ds get the rendered parquet inside
the package and never need the fonts.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger("render_glyphs")

# Font packages the dataset is rendered from (`make glyph-fonts` installs them). Faces whose glyphs duplicate an
# earlier face's are dropped automatically (see dedupe_faces), so listing a family twice costs nothing.
FONT_PACKAGES = (
    "fonts-aoyagi-kouzan-t", "fonts-aoyagi-soseki", "fonts-arphic-bkai00mp", "fonts-arphic-bsmi00lp",
    "fonts-arphic-gbsn00lp", "fonts-arphic-gkai00mp", "fonts-arphic-ukai", "fonts-arphic-uming",
    "fonts-babelstone-han", "fonts-cns11643-kai", "fonts-cns11643-sung", "fonts-cwtex-fs", "fonts-cwtex-heib",
    "fonts-cwtex-kai", "fonts-cwtex-ming", "fonts-cwtex-yen", "fonts-dejima-mincho", "fonts-hanazono",
    "fonts-horai-umefont", "fonts-ipaexfont-gothic", "fonts-ipaexfont-mincho", "fonts-ipafont-gothic",
    "fonts-ipafont-mincho", "fonts-ipamj-mincho", "fonts-kiloji", "fonts-klee", "fonts-konatu",
    "fonts-kouzan-mouhitsu", "fonts-lxgw-wenkai", "fonts-migmix", "fonts-motoya-l-cedar", "fonts-motoya-l-maruberi",
    "fonts-noto-cjk", "fonts-oradano-mincho-gsrr", "fonts-sawarabi-gothic", "fonts-sawarabi-mincho", "fonts-seto",
    "fonts-smiley-sans", "fonts-takao-gothic", "fonts-takao-mincho", "fonts-vlgothic", "fonts-wqy-microhei",
    "fonts-wqy-zenhei", "fonts-yozvox-yozfont", "fonts-mona", "fonts-monapo", "fonts-misaki",
    "fonts-droid-fallback", "fonts-umeplus", "fonts-mmcedar", "fonts-komatuna",
)
HAN_BLOCK = range(0x4E00, 0xA000)  # CJK Unified Ideographs (the basic block)
UNASSIGNED = 0x10FFFD  # drawn as .notdef by every face here (plane 16 private use, assigned by no font)
PROBE = "永人日月山水火木金土中大小上下左右西南北春夏秋冬花雨雪天地"  # dedupe probe: one form in zh-Hans, zh-Hant, ja


@dataclass(frozen=True)
class RenderConfig:
    image_size: int = 32  # output side in pixels (the default generator's size)
    ink_fraction: float = 0.84  # the ink box's longer side, as a fraction of image_size, before jitter
    scale_jitter: float = 0.08  # ink size multiplied by U(1 - j, 1)
    shift_jitter: int = 1  # centre moved by an integer in [-j, j] pixels on each axis
    render_size: int = 96  # font size the glyph is drawn at before it is scaled down
    images_per_identity: int = 16  # faces drawn per character (a seeded choice among the faces that have it)
    min_images: int = 12  # characters with fewer drawable faces are left out
    min_cmap_faces: int = 24  # candidates: characters at least this many faces map (a real choice of 16 styles)
    train_identities: int = 3000
    verify_identities: int = 600
    dedupe_level: float = 3.0  # faces whose probe renderings differ by less than this mean |diff| (0-255) are one
    grey_levels: int = 16  # ink quantised to 16 levels (a 4-bit scan): the PNGs shrink by ~40%
    seed: int = 0


@dataclass(frozen=True)
class Face:
    path: str
    index: int  # face index in a .ttc collection
    family: str
    style: str
    version: str
    licence: str
    package: str  # Debian package (name=version)

    @property
    def name(self) -> str:
        return f"{self.family} {self.style}".strip()


def _run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _package_of(path: str) -> str:
    try:
        pkg = _run(["dpkg", "-S", path]).split(":", 1)[0].strip()
        version = _run(["dpkg-query", "-W", "-f", "${Version}", pkg]).strip()
        return f"{pkg}={version}"
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def _debian_licence(package: str) -> str:
    """The first ``License:`` of the package's machine-readable copyright file (fonts whose name table has none)."""
    path = Path("/usr/share/doc") / package.split("=", 1)[0] / "copyright"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("License:") and ln[8:].strip()), "")


def _name_record(font, *ids: int) -> str:
    for i in ids:
        rec = font["name"].getDebugName(i)
        if rec:
            return " ".join(rec.split())
    return ""


def discover_faces() -> list[Face]:
    """Every installed face that fontconfig says covers Chinese or Japanese, in a fixed order."""
    from fontTools.ttLib import TTFont

    seen: set[tuple[str, int]] = set()
    for lang in ("zh", "ja"):
        out = _run(["fc-list", f":lang={lang}", "-f", "%{file}|%{index}\n"])
        for line in out.splitlines():
            path, _, index = line.partition("|")
            if path and Path(path).resolve() == Path(path):  # skip symlinked aliases (fonts-japanese-*.ttf)
                seen.add((path, int(index or 0)))
    faces = []
    for path, index in sorted(seen):
        font = TTFont(path, fontNumber=index, lazy=True)
        package = _package_of(path)
        licence = _name_record(font, 14, 13)[:200]
        if not licence.lower().startswith(("http", "arphic", "gnu", "sil", "apache", "ipa", "bitstream")):
            licence = _debian_licence(package) or licence  # a name record that is a credit line, not a licence
        faces.append(Face(path=path, index=index, family=_name_record(font, 16, 1), style=_name_record(font, 17, 2),
                          version=_name_record(font, 5), licence=licence, package=package))
    return faces


def coverage(face: Face) -> set[int]:
    """Code points of the Han block that the face's cmap maps to a glyph."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(face.path, fontNumber=face.index, lazy=True).getBestCmap() or {}
    return {cp for cp in cmap if cp in HAN_BLOCK}


def draw(font: ImageFont.FreeTypeFont, codepoint: int, size: int) -> np.ndarray:
    """The glyph drawn at ``size`` on a canvas large enough for any glyph, uint8, unaligned (all zero when
    FreeType cannot draw it: a broken hinting program counts as a missing glyph)."""
    canvas = Image.new("L", (3 * size, 3 * size), 0)
    try:
        ImageDraw.Draw(canvas).text((1.5 * size, 1.5 * size), chr(codepoint), font=font, fill=255, anchor="mm")
    except OSError:
        return np.zeros((3 * size, 3 * size), dtype=np.uint8)
    return np.asarray(canvas)


def is_missing(raw: np.ndarray, notdef: np.ndarray) -> bool:
    """True when a drawing has no ink or is the face's .notdef box."""
    return not raw.any() or (raw.shape == notdef.shape and np.array_equal(raw, notdef))


def align(raw: np.ndarray, cfg: RenderConfig, rng: np.random.Generator) -> np.ndarray:
    """Crop the ink box, scale its longer side to ``ink_fraction * image_size`` (jittered), centre (jittered)."""
    img = Image.fromarray(raw)
    left, top, right, bottom = img.getbbox()
    crop = img.crop((left, top, right, bottom))
    w, h = crop.size
    target = cfg.ink_fraction * cfg.image_size * (1.0 - cfg.scale_jitter * rng.random())
    scale = target / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = crop.resize((nw, nh), Image.LANCZOS)
    dx, dy = (int(v) for v in rng.integers(-cfg.shift_jitter, cfg.shift_jitter + 1, size=2))
    out = Image.new("L", (cfg.image_size, cfg.image_size), 0)
    out.paste(small, ((cfg.image_size - nw) // 2 + dx, (cfg.image_size - nh) // 2 + dy))
    step = 255 // (cfg.grey_levels - 1)
    return (np.round(np.asarray(out) / step) * step).astype(np.uint8)


def _rng(cfg: RenderConfig, *keys: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, *keys])


def dedupe_faces(faces: list[Face], cfg: RenderConfig) -> list[Face]:
    """Drop faces whose probe glyphs are (near-)identical to an earlier kept face's (same design, other metrics)."""
    kept: list[tuple[Face, np.ndarray]] = []
    for face in faces:
        font = ImageFont.truetype(face.path, cfg.render_size, index=face.index)
        notdef = draw(font, UNASSIGNED, cfg.render_size)
        raws = [draw(font, ord(c), cfg.render_size) for c in PROBE]
        if any(is_missing(r, notdef) for r in raws):
            logger.info("skip %s: lacks probe characters", face.name)
            continue
        no_jitter = dataclasses.replace(cfg, scale_jitter=0.0, shift_jitter=0)
        probe = np.stack([align(r, no_jitter, _rng(cfg, 0)) for r in raws]).astype(np.float32)
        twin = next((f for f, p in kept if float(np.abs(p - probe).mean()) < cfg.dedupe_level), None)
        if twin is not None:
            logger.info("skip %s: same glyphs as %s", face.name, twin.name)
            continue
        kept.append((face, probe))
    return [f for f, _ in kept]


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def render(cfg: RenderConfig) -> tuple[dict[str, list[dict]], list[Face], dict]:
    faces = dedupe_faces(discover_faces(), cfg)
    logger.info("%d distinct faces", len(faces))
    covers = [coverage(f) for f in faces]
    count = {cp: sum(cp in c for c in covers) for cp in HAN_BLOCK}
    # Enough faces by cmap; the drawings are checked below (a cmap entry can still draw nothing or .notdef).
    eligible = [cp for cp in HAN_BLOCK if count[cp] >= max(cfg.min_images, cfg.min_cmap_faces)]
    order = _rng(cfg, 1).permutation(len(eligible))
    fonts = [ImageFont.truetype(f.path, cfg.render_size, index=f.index) for f in faces]
    notdefs = [draw(font, UNASSIGNED, cfg.render_size) for font in fonts]
    want = cfg.train_identities + cfg.verify_identities
    identities: list[tuple[int, list[tuple[int, np.ndarray]]]] = []
    dropped = 0
    for k in order:
        if len(identities) == want:
            break
        cp = eligible[k]
        have = [i for i, c in enumerate(covers) if cp in c]
        drawn = []
        for i in _rng(cfg, 2, cp).permutation(have):
            raw = draw(fonts[i], cp, cfg.render_size)
            if not is_missing(raw, notdefs[i]):
                drawn.append((int(i), align(raw, cfg, _rng(cfg, 3, cp, int(i)))))
            if len(drawn) == cfg.images_per_identity:
                break
        if len(drawn) < cfg.min_images:
            dropped += 1
            continue
        identities.append((cp, sorted(drawn)))
    if len(identities) < want:
        raise SystemExit(f"only {len(identities)} characters have >= {cfg.min_images} faces; {want} wanted")
    splits = {"train": identities[:cfg.train_identities], "verify": identities[cfg.train_identities:]}
    rows = {}
    for split, ids in splits.items():
        rows[split] = [{"image": {"bytes": _png(arr), "path": None}, "label": label, "character": chr(cp),
                        "codepoint": f"U+{cp:04X}", "font": faces[i].name}
                       for label, (cp, drawn) in enumerate(ids) for i, arr in drawn]
    stats = {"faces": len(faces), "eligible_characters": len(eligible), "dropped_for_missing_glyphs": dropped,
             "images": {s: len(r) for s, r in rows.items()}, "identities": {s: len(i) for s, i in splits.items()},
             "class_names": {s: [chr(cp) for cp, _ in ids] for s, ids in splits.items()}}
    return rows, faces, stats


def write(out: Path, cfg: RenderConfig) -> None:
    import datasets

    rows, faces, stats = render(cfg)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        features = datasets.Features({
            "image": datasets.Image(), "label": datasets.ClassLabel(names=stats["class_names"][split]),
            "character": datasets.Value("string"), "codepoint": datasets.Value("string"),
            "font": datasets.Value("string")})
        ds = datasets.Dataset.from_list(split_rows, features=features)
        ds.to_parquet(str(out / "data" / f"{split}-00000-of-00001.parquet"))
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "data").glob("*.parquet"))}
    meta = {"render_config": dataclasses.asdict(cfg), **{k: v for k, v in stats.items() if k != "class_names"},
            "fonts": [dataclasses.asdict(f) for f in faces], "sha256": digests}
    (out / "glyphs.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(card(meta), encoding="utf-8")
    logger.info("wrote %s: %s", out, stats["images"])


def card(meta: dict) -> str:
    fonts = "\n".join(f"| {f['family']} | {f['style']} | {f['version']} | {f['licence'] or 'see package'} | "
                      f"`{f['package']}` |" for f in meta["fonts"])
    ids, imgs = meta["identities"], meta["images"]
    return f"""---
license: other
license_name: per-font
license_details: Each typeface keeps its own licence (table below); the renderings are bitmaps, not font software.
task_categories:
- image-classification
tags:
- synthetic
- open-set-recognition
- han-characters
size_categories:
- 10K<n<100K
configs:
- config_name: train
  data_files:
  - split: train
    path: data/train-*.parquet
- config_name: verify
  data_files:
  - split: test
    path: data/verify-*.parquet
---

# glyphs-han: Han ideographs as identities

An open-set recognition benchmark of the shape of face recognition that needs no download: each identity is
one CJK unified ideograph, and its images are that character drawn by {meta['faces']} distinct typefaces
(Ming/Song, Kai, Gothic, brush and handwriting styles) from Debian's font packages, aligned like face crops
(ink box scaled to a fixed size and centred, with a small seeded jitter), 32x32 greyscale.

Two configs with disjoint identities (each has its own `ClassLabel` names):
`load_dataset(DIR, "train", split="train")` and `load_dataset(DIR, "verify", split="test")`.

| config | identities | images | use |
|---|---|---|---|
| `train` | {ids['train']} | {imgs['train']} | training generators and discriminators (`glyphs-han-train`, a random class order: `glyphs-han-train[0-299]` is a random subset) |
| `verify` | {ids['verify']} | {imgs['verify']} | verification only: no character is also in `train` (`glyphs-han-verify`) |

Each row: `image`, `label` (a `ClassLabel` whose names are the characters), `character`, `codepoint`, `font`.
A face that lacks a character (no cmap entry, an empty drawing, or its `.notdef` box) is skipped; characters with
fewer than {meta['render_config']['min_images']} faces are left out.

Regenerate byte for byte from the same font packages: `make glyph-fonts && make glyphs`
(`tools/render_glyphs.py`; settings and file digests in `glyphs.json`).

## Typefaces

| family | style | version | licence | Debian package |
|---|---|---|---|---|
{fonts}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("scoremix_ds/default/glyphs-han"))
    parser.add_argument("--train-identities", type=int, default=RenderConfig.train_identities)
    parser.add_argument("--verify-identities", type=int, default=RenderConfig.verify_identities)
    parser.add_argument("--print-packages", action="store_true", help="print the Debian font packages and exit")
    args = parser.parse_args(argv)
    if args.print_packages:
        print(" ".join(FONT_PACKAGES))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write(args.out, RenderConfig(train_identities=args.train_identities, verify_identities=args.verify_identities))
    return 0


if __name__ == "__main__":
    sys.exit(main())
