#!/usr/bin/env bash
# Download pyiqa 0.1.16's calibration images (ResultsCalibra/{ref_dir,dist_dir}, 5 BMP pairs,
# 512x384) into the cache directory read by framer-metrics' oracle tests.
#
#   framer-metrics/scripts/fetch-pyiqa.sh            # -> <workspace>/target/pyiqa-calibra
#   FRAMER_PYIQA_DIR=/some/dir framer-metrics/scripts/fetch-pyiqa.sh
#
# The images carry pyiqa's non-commercial licence: they are fetched at test time and never
# committed. Needs python3 with pip and network access to PyPI.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$(cd "$script_dir/../.." && pwd)"
dest="${FRAMER_PYIQA_DIR:-$workspace/target/pyiqa-calibra}"

if [[ -f "$dest/dist_dir/I03.bmp" && -f "$dest/ref_dir/I19.bmp" ]]; then
    echo "pyiqa calibration images already in $dest"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

python3 -m pip download --quiet --no-deps --only-binary :all: pyiqa==0.1.16 -d "$tmp"
wheel="$(ls "$tmp"/pyiqa-0.1.16-*.whl)"

mkdir -p "$dest"
python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
count = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "ResultsCalibra" and parts[1] in ("ref_dir", "dist_dir") and parts[2]:
            out = dest / parts[1] / parts[2]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
            count += 1
if count != 10:
    sys.exit(f"expected 10 calibration images in {wheel}, found {count}")
print(f"extracted {count} images into {dest}")
PY
