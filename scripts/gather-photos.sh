#!/usr/bin/env bash
# Gathers a larger set of real photographs for training from registry packages (Debian and PyPI)
# into DEST, one sub-folder per source, each with the licence file of its package.
#
#   scripts/gather-photos.sh DEST [SOURCE...]
#
# SOURCE is any of: lomiri-16.04 lomiri-20.04 mate plasma libjxl skimage sklearn (default: all).
# About 41 high-resolution photos (~215 MP) plus ~9 mid-resolution ones; the Debian packages total
# about 225 MB to download (plasma alone is 94 MB). Needs apt-get with Debian bookworm sources
# (run `apt-get update` first if the package lists are empty), dpkg-deb, pip and unzip.
# Only photographs are kept: the artwork and abstract wallpapers of these packages are skipped.
# Not run in CI; the crate embeds a small subset (framer-data/assets) so nothing here is required.
#
# Train on the result with TrainPairs::from_folder on each sub-folder (or copy them into one);
# photos with a shorter side of 1024 px or more are halved on load by default.
set -euo pipefail

if [ $# -lt 1 ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
DEST=$1
shift
SOURCES=("$@")
[ ${#SOURCES[@]} -eq 0 ] && SOURCES=(lomiri-16.04 lomiri-20.04 mate plasma libjxl skimage sklearn)

SKIMAGE_VERSION=0.26.0
SKLEARN_VERSION=1.7.2

mkdir -p "$DEST"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# deb_extract PACKAGE: downloads the .deb into $WORK and extracts it to $WORK/PACKAGE; prints the root.
deb_extract() {
  local pkg=$1
  (cd "$WORK" && apt-get download "$pkg" >/dev/null) || {
    echo "error: 'apt-get download $pkg' failed (try 'apt-get update' first)" >&2
    return 1
  }
  local deb
  deb=$(ls "$WORK"/"${pkg}"_*.deb | head -n1)
  mkdir -p "$WORK/$pkg"
  dpkg-deb -x "$deb" "$WORK/$pkg"
  dpkg-deb -f "$deb" Version >"$WORK/$pkg.version"
  echo "$WORK/$pkg"
}

# note DIR PACKAGE VERSION LICENCE-FILE: records where the photos came from.
note() {
  local dir=$1 pkg=$2 version=$3 licence=$4
  cp "$licence" "$dir/COPYRIGHT"
  printf 'Source: %s %s\nLicences: per file, see COPYRIGHT\n' "$pkg" "$version" >"$dir/SOURCE.txt"
}

for src in "${SOURCES[@]}"; do
  case $src in
  lomiri-16.04)
    root=$(deb_extract lomiri-wallpapers-16.04)
    out=$DEST/lomiri-16.04
    mkdir -p "$out"
    for f in "$root"/usr/share/backgrounds/*_by_*.jpg; do
      case $(basename "$f") in umang_* | analogpattern_*) continue ;; esac # artwork, abstract
      cp "$f" "$out/"
    done
    note "$out" lomiri-wallpapers-16.04 "$(cat "$WORK/lomiri-wallpapers-16.04.version")" \
      "$root/usr/share/doc/lomiri-wallpapers-16.04/copyright"
    ;;
  lomiri-20.04)
    root=$(deb_extract lomiri-wallpapers-20.04)
    out=$DEST/lomiri-20.04
    mkdir -p "$out"
    cp "$root"/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg "$out/" # the others are artwork
    note "$out" lomiri-wallpapers-20.04 "$(cat "$WORK/lomiri-wallpapers-20.04.version")" \
      "$root/usr/share/doc/lomiri-wallpapers-20.04/copyright"
    ;;
  mate)
    root=$(deb_extract mate-backgrounds)
    out=$DEST/mate
    mkdir -p "$out"
    cp "$root"/usr/share/backgrounds/mate/nature/*.jpg "$out/"
    note "$out" mate-backgrounds "$(cat "$WORK/mate-backgrounds.version")" \
      "$root/usr/share/doc/mate-backgrounds/copyright"
    ;;
  plasma)
    root=$(deb_extract plasma-workspace-wallpapers)
    out=$DEST/plasma
    mkdir -p "$out"
    for name in BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite \
      OneStandsOut Path summer_1am; do
      f=$root/usr/share/wallpapers/$name/contents/images/2560x1600.jpg
      if [ -f "$f" ]; then cp "$f" "$out/$name.jpg"; else echo "note: $name not found in plasma" >&2; fi
    done
    note "$out" plasma-workspace-wallpapers "$(cat "$WORK/plasma-workspace-wallpapers.version")" \
      "$root/usr/share/doc/plasma-workspace-wallpapers/copyright"
    ;;
  libjxl)
    root=$(deb_extract libjxl-testdata)
    out=$DEST/libjxl
    mkdir -p "$out"
    cp "$root"/usr/share/libjxl-testdata/jxl/flower/flower.png "$out/"
    cp "$root"/usr/share/libjxl-testdata/external/wesaturate/500px/*_srgb8.png "$out/"
    note "$out" libjxl-testdata "$(cat "$WORK/libjxl-testdata.version")" \
      "$root/usr/share/doc/libjxl-testdata/copyright"
    ;;
  skimage)
    pip download --quiet --no-deps "scikit-image==$SKIMAGE_VERSION" -d "$WORK/pypi-skimage"
    out=$DEST/skimage
    mkdir -p "$out"
    (cd "$WORK/pypi-skimage" && unzip -q -o ./*.whl 'skimage/data/*' 'scikit_image-*.dist-info/*')
    for f in astronaut.png chelsea.png coffee.png rocket.jpg hubble_deep_field.jpg motorcycle_left.png; do
      cp "$WORK/pypi-skimage/skimage/data/$f" "$out/"
    done
    cp "$WORK"/pypi-skimage/scikit_image-*.dist-info/licenses/LICENSE.txt "$out/COPYRIGHT" 2>/dev/null ||
      cp "$WORK"/pypi-skimage/scikit_image-*.dist-info/LICENSE* "$out/COPYRIGHT" 2>/dev/null || true
    cat >"$out/SOURCE.txt" <<TXT
Source: PyPI scikit-image $SKIMAGE_VERSION (wheel), skimage/data/
Licences (from the docstrings in skimage/data/_fetchers.py): astronaut, rocket, hubble_deep_field:
public domain (NASA / SpaceX); chelsea, coffee: CC0; motorcycle_left: Middlebury stereo data set.
TXT
    ;;
  sklearn)
    pip download --quiet --no-deps "scikit-learn==$SKLEARN_VERSION" -d "$WORK/pypi-sklearn" \
      --only-binary :all: --python-version 3.12 --platform manylinux_2_17_x86_64 --implementation cp
    out=$DEST/sklearn
    mkdir -p "$out"
    (cd "$WORK/pypi-sklearn" && unzip -q -o ./*.whl 'sklearn/datasets/images/*')
    cp "$WORK"/pypi-sklearn/sklearn/datasets/images/*.jpg "$out/"
    cp "$WORK"/pypi-sklearn/sklearn/datasets/images/README.txt "$out/COPYRIGHT"
    printf 'Source: PyPI scikit-learn %s (wheel), sklearn/datasets/images/\nLicence: CC-BY-2.0 (see COPYRIGHT)\n' \
      "$SKLEARN_VERSION" >"$out/SOURCE.txt"
    ;;
  *)
    echo "error: unknown source '$src'" >&2
    exit 2
    ;;
  esac
  echo "$src: $(find "$DEST/${src}" -maxdepth 1 -type f \( -name '*.jpg' -o -name '*.png' \) | wc -l) photos in $DEST/$src"
done
