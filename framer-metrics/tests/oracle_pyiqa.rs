//! Oracle tests on pyiqa 0.1.16's calibration images (`ResultsCalibra`, 5 pairs, 512×384).
//!
//! The images are not in the repository (non-commercial licence). Run
//! `framer-metrics/scripts/fetch-pyiqa.sh` first; the tests read `$FRAMER_PYIQA_DIR`, default
//! `<workspace>/target/pyiqa-calibra`, and skip with a note when the images are absent.
//!
//! Reference values:
//! - `psnr`, `ssim`: pyiqa's own results ("ours" rows of `ResultsCalibra/calibration_summary.csv`
//!   in the pyiqa 0.1.16 sdist), matched to 4 decimals.
//! - `psnr_y`, `ssim_y`, `niqe`: `scripts/reference_values.py`, a float64 numpy port of BasicSR
//!   1.4.2's `calculate_psnr` / `calculate_ssim` (`test_y_channel=True`) and `niqe()`
//!   (MATLAB `imresize` included), with NIQE fed rounded YIQ luma computed in `f32` exactly as
//!   this crate does. Output of `python3 scripts/reference_values.py <dir> niqe_pris_params.npz`:
//!
//! ```text
//! I03: psnr_y=23.592199 psnr_y_crop4=23.582489 ssim=0.699736 ssim_y=0.735293 ssim_y_crop4=0.733651 niqe=15.676003
//! I04: psnr_y=57.338766 psnr_y_crop4=57.299464 ssim=0.997755 ssim_y=0.998868 ssim_y_crop4=0.998862 niqe=3.654922
//! I06: psnr_y=57.878282 psnr_y_crop4=57.887374 ssim=0.998908 ssim_y=0.999533 ssim_y_crop4=0.999548 niqe=3.235775
//! I08: psnr_y=25.064921 psnr_y_crop4=24.905093 ssim=0.967093 ssim_y=0.967622 ssim_y_crop4=0.966379 niqe=3.200429
//! I19: psnr_y=24.336761 psnr_y_crop4=24.281604 ssim=0.652156 ssim_y=0.679621 ssim_y_crop4=0.680403 niqe=9.025282
//! ```
//!
//! NIQE, three implementations on the 5 distorted images:
//!
//! | | I03 | I04 | I06 | I08 | I19 |
//! |---|---|---|---|---|---|
//! | MATLAB (pyiqa's "org" row) | 15.7536 | 3.6549 | 3.2355 | 3.1840 | 8.6352 |
//! | pyiqa 0.1.16 ("ours" row) | 15.6538 | 3.6549 | 3.2342 | 3.1922 | 9.0722 |
//! | this crate = numpy BasicSR port | 15.6760 | 3.6549 | 3.2358 | 3.2004 | 9.0253 |
//!
//! This crate is within 0.05 of pyiqa on all five (largest gap I19, 0.047). I03 is very
//! sensitive to rounding ties of the luma (43 of its pixels round differently when the luma is
//! computed in `f64`, which moves NIQE by 0.015) and to `f32` vs `f64` arithmetic (BasicSR's own
//! `f32` images give I03 15.674 but I19 8.669): heavily distorted images have many near-flat
//! blocks whose AGGD fits sit on the edge of the shape grid. An earlier independent numpy port
//! reported 15.763 / 3.655 / 3.236 / 3.203 / 9.022; the 4 last agree with ours to 0.003, I03
//! differs by 0.087 for the reasons above.

use std::path::PathBuf;

use framer_metrics::{
    Metric, MetricImage, StructuralSimilarityOptions, TableFormat, comparison_table,
    evaluate_folders, niqe, psnr, psnr_y, ssim, ssim_with, ssim_y,
};

const NAMES: [&str; 5] = ["I03", "I04", "I06", "I08", "I19"];

fn calibra_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FRAMER_PYIQA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyiqa-calibra")
        });
    if dir.join("dist_dir/I03.bmp").is_file() && dir.join("ref_dir/I19.bmp").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "note: skipping pyiqa oracle test: calibration images not found in {} \
             (run framer-metrics/scripts/fetch-pyiqa.sh or set FRAMER_PYIQA_DIR)",
            dir.display()
        );
        None
    }
}

fn pair(dir: &std::path::Path, name: &str) -> (MetricImage, MetricImage) {
    let d = MetricImage::load(dir.join(format!("dist_dir/{name}.bmp"))).unwrap();
    let r = MetricImage::load(dir.join(format!("ref_dir/{name}.bmp"))).unwrap();
    (d, r)
}

fn assert_close(what: &str, name: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{what} {name}: got {got:.6}, want {want} ± {tol}"
    );
}

#[test]
fn psnr_and_ssim_match_pyiqa_to_four_decimals() {
    let Some(dir) = calibra_dir() else { return };
    let psnr_ref = [21.1136, 20.9872, 27.0139, 23.3002, 21.6186];
    let ssim_ref = [0.6997, 0.9978, 0.9989, 0.9671, 0.6522];
    for (i, name) in NAMES.iter().enumerate() {
        let (d, r) = pair(&dir, name);
        assert_eq!((d.width(), d.height()), (512, 384));
        // pyiqa's values are rounded to 4 decimals. pyiqa computes the MSE in f32 and adds
        // 1e-8 to it (this crate: f64, no eps, inf for identical images), which moves the
        // value by up to 2e-5 dB here: I08 is 23.300255 here, 23.300246 with the eps, and pyiqa
        // prints 23.3002; I06 is 27.013871 here, 27.013849 with the eps, pyiqa prints 27.0139.
        // So the bound is half a unit of the 4th decimal plus 3e-5.
        assert_close(
            "psnr",
            name,
            psnr(&d, &r, 0).unwrap(),
            psnr_ref[i],
            0.5e-4 + 3e-5,
        );
        assert_close(
            "ssim",
            name,
            ssim(&d, &r, 0).unwrap(),
            ssim_ref[i],
            0.5e-4 + 1e-9,
        );
    }
}

#[test]
fn y_channel_variants_match_the_numpy_basicsr_port() {
    let Some(dir) = calibra_dir() else { return };
    let psnr_y_ref = [23.592199, 57.338766, 57.878282, 25.064921, 24.336761];
    let psnr_y4_ref = [23.582489, 57.299464, 57.887374, 24.905093, 24.281604];
    let ssim_y_ref = [0.735293, 0.998868, 0.999533, 0.967622, 0.679621];
    let ssim_y4_ref = [0.733651, 0.998862, 0.999548, 0.966379, 0.680403];
    for (i, name) in NAMES.iter().enumerate() {
        let (d, r) = pair(&dir, name);
        assert_close(
            "psnr_y",
            name,
            psnr_y(&d, &r, 0).unwrap(),
            psnr_y_ref[i],
            2e-6,
        );
        assert_close(
            "psnr_y crop 4",
            name,
            psnr_y(&d, &r, 4).unwrap(),
            psnr_y4_ref[i],
            2e-6,
        );
        assert_close(
            "ssim_y",
            name,
            ssim_y(&d, &r, 0).unwrap(),
            ssim_y_ref[i],
            2e-6,
        );
        assert_close(
            "ssim_y crop 4",
            name,
            ssim_y(&d, &r, 4).unwrap(),
            ssim_y4_ref[i],
            2e-6,
        );
        // pyiqa's YCbCr variant rounds the luma and clamps cs: close to BasicSR's, not equal.
        let pyiqa_y = ssim_with(&d, &r, &StructuralSimilarityOptions::PYIQA_YCBCR).unwrap();
        assert_close("ssim pyiqa-ycbcr", name, pyiqa_y, ssim_y_ref[i], 2e-3);
    }
}

#[test]
fn niqe_matches_the_basicsr_port_and_is_within_0_05_of_pyiqa() {
    let Some(dir) = calibra_dir() else { return };
    let port_ref = [15.676003, 3.654922, 3.235775, 3.200429, 9.025282];
    let pyiqa_ref = [15.6538, 3.6549, 3.2342, 3.1922, 9.0722];
    for (i, name) in NAMES.iter().enumerate() {
        let (d, _) = pair(&dir, name);
        let v = niqe(&d, 0).unwrap();
        assert_close("niqe vs numpy BasicSR port", name, v, port_ref[i], 1e-4);
        assert_close("niqe vs pyiqa", name, v, pyiqa_ref[i], 0.05);
    }
}

#[test]
fn folder_evaluation_on_the_calibration_set() {
    let Some(dir) = calibra_dir() else { return };
    let metrics = [Metric::Psnr, Metric::SsimY, Metric::Niqe];
    let eval = evaluate_folders(
        &dir.join("dist_dir"),
        Some(&dir.join("ref_dir")),
        0,
        &metrics,
    )
    .unwrap();
    let stems: Vec<&str> = eval.images.iter().map(|s| s.stem.as_str()).collect();
    assert_eq!(stems, NAMES);
    let mean_psnr = (21.1136 + 20.9872 + 27.0139 + 23.3002 + 21.6186) / 5.0;
    assert!((eval.mean(Metric::Psnr).unwrap() - mean_psnr).abs() < 1e-4);
    // The reference images against themselves: infinite PSNR, SSIM 1, and the comparison
    // table shows the relative change.
    let ideal = evaluate_folders(
        &dir.join("ref_dir"),
        Some(&dir.join("ref_dir")),
        4,
        &[Metric::SsimY],
    )
    .unwrap();
    assert_eq!(ideal.mean(Metric::SsimY), Some(1.0));
    let table = comparison_table(
        &[eval.summary("distorted"), ideal.summary("reference")],
        TableFormat::Markdown,
    )
    .unwrap();
    assert!(table.contains("| ssim_y ↑ |"), "{table}");
    assert!(table.lines().count() == 2 + 3 + 1, "{table}");
}
