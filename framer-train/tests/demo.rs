//! The main job end to end on a tiny budget: both runs train (side by side, two threads), the
//! held-out crops are super-resolved by both, the report holds the comparison and the labelled
//! figures, and the run folders are real runs: `framer sr --run` and `framer analyze --run` work
//! on them.

use burn::backend::{Autodiff, Flex};
use framer_data::Image;
use framer_train::Builtin;
use framer_train::demo::{DemoBackbone, DemoObjective, DemoOptions, run_demo};

#[test]
fn main_job_writes_a_comparison_figures_and_usable_runs() {
    let out = std::env::temp_dir().join(format!("framer-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let options = DemoOptions {
        backbone: DemoBackbone::Dit,
        objective: DemoObjective::OneStep { sigma: 1.0 },
        steps: 2,
        batch_size: 1,
        eval_size: 64,
        jobs: 2,
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
        assert_eq!(scores.per_image.len(), 3, "three held-out photos");
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
    assert_eq!(samples.len(), 3, "one figure per held-out photo");
    for entry in samples {
        let image = image::open(entry.unwrap().path()).unwrap();
        // five 64-px panels side by side with gaps, titles above and the zoomed detail below
        assert!(image.width() >= 5 * 64 && image.height() >= 2 * 64, "{}×{}", image.width(), image.height());
    }

    // `framer sr --run <out>/framer` on an LR photo of its own
    let photo = &framer_data::embedded::held_out().unwrap()[0].image;
    let lr: Image = photo.crop(0, 0, 20, 24).unwrap();
    let lr_path = out.join("lr.png");
    lr.save_png(&lr_path).unwrap();
    let sr_path = out.join("sr.png");
    let run = out.join("framer");
    let code = framer_train::cli::main_from::<Builtin, _, _>([
        "framer".as_ref(),
        "sr".as_ref(),
        "--run".as_ref(),
        run.as_os_str(),
        lr_path.as_os_str(),
        sr_path.as_os_str(),
    ]);
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let sr = image::open(&sr_path).unwrap();
    assert_eq!((sr.width(), sr.height()), (80, 96), "×4 of the 20×24 LR photo");

    // `framer analyze --run <out>/framer` on a folder holding that LR photo
    let images = out.join("lr_images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(&lr_path, images.join("lr.png")).unwrap();
    let analysis = out.join("analysis");
    let code = framer_train::cli::main_from::<Builtin, _, _>([
        "framer".as_ref(),
        "analyze".as_ref(),
        "--run".as_ref(),
        run.as_os_str(),
        "--images".as_ref(),
        images.as_os_str(),
        "--out".as_ref(),
        analysis.as_os_str(),
    ]);
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(std::fs::read_dir(&analysis).unwrap().count() > 0);
    std::fs::remove_dir_all(&out).unwrap();
}
