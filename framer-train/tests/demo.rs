//! The main job end to end on a tiny budget: both runs train, the held-out photos are
//! super-resolved by both, and the report holds the comparison and the side-by-side samples.

use burn::backend::{Autodiff, Flex};
use framer_train::demo::{DemoBackbone, DemoOptions, run_demo};

#[test]
fn main_job_writes_a_comparison_and_side_by_side_samples() {
    let out = std::env::temp_dir().join(format!("framer-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let options = DemoOptions {
        backbone: DemoBackbone::Dit,
        steps: 2,
        batch_size: 1,
        sample_steps: 2,
        out: out.clone(),
        ..DemoOptions::default()
    };
    let report = run_demo::<Autodiff<Flex>>(&options, &Default::default()).unwrap();

    // two runs of the same budget, the second with FRAMER
    assert_eq!(report.runs[0].end_step, 2);
    assert_eq!(report.runs[1].end_step, 2);
    let names: Vec<&str> = report.scores.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["baseline", "+FRAMER", "bicubic"]);
    for scores in &report.scores {
        for (metric, value) in &scores.means {
            assert!(value.is_finite(), "{} {metric:?} = {value}", scores.name);
        }
    }
    // FRAMER changed the training: the two runs' weights (hence outputs) differ
    assert_ne!(report.scores[0].means, report.scores[1].means);

    let table = std::fs::read_to_string(out.join("comparison.md")).unwrap();
    assert!(table.contains("psnr_y") && table.contains("ssim_y") && table.contains("+FRAMER"), "{table}");
    assert!(out.join("comparison.csv").is_file());
    assert!(out.join("loss.png").is_file());
    let samples: Vec<_> = std::fs::read_dir(out.join("samples")).unwrap().collect();
    assert_eq!(samples.len(), 3, "one side-by-side image per held-out photo");
    for entry in samples {
        let image = image::open(entry.unwrap().path()).unwrap();
        // LR upsampled | baseline | +FRAMER | HR, each a 64² crop
        assert_eq!((image.width(), image.height()), (4 * 64, 64));
    }
    std::fs::remove_dir_all(&out).unwrap();
}
