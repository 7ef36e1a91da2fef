//! Checks framer's FRAMER loss against a reference case.
//!
//! ```text
//! cargo run --release -p framer --example golden -- path/to/CASE.json [more.json ...]
//! cargo run --release -p framer --features cuda --example golden -- --cuda CASE.json  # on a GPU
//! cargo run --release -p framer --example golden -- --tensor CASE.json  # tensor path on the CPU
//! ```
//!
//! On CPU backends the loss runs on the host (FFTs, closed-form gradient); `--tensor` forces the
//! tensor path (dense DFT products, autodiff) that GPU backends use.
//!
//! On the GPU the tolerances are relaxed to allow TF32 matrix products (terms 2e-3, gradients 5e-3).
//!
//! `CASE.safetensors` must lie beside each JSON file. Prints, per case, a table of computed vs
//! expected values with their errors, with the reference's mask injected and with framer's own
//! mask; exits 0 when everything is within tolerance, 1 otherwise, 2 on unreadable input.

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;
use framer::LossExecution;
use framer::golden::{GoldenCase, GoldenReport, MaskSource, Tolerances, check_case_with};

fn main() {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    let cuda = paths.iter().any(|p| p == "--cuda");
    let execution =
        if paths.iter().any(|p| p == "--tensor") { LossExecution::Tensor } else { LossExecution::Auto };
    paths.retain(|p| p != "--cuda" && p != "--tensor");
    if cuda {
        #[cfg(feature = "cuda")]
        {
            let tolerances = Tolerances { terms: 2e-3, gradients: 5e-3, ..Tolerances::default() };
            return run::<Autodiff<burn::backend::Cuda>>(&paths, tolerances, execution, &Default::default());
        }
        #[cfg(not(feature = "cuda"))]
        {
            eprintln!("--cuda needs a build with `--features cuda`");
            std::process::exit(2);
        }
    }
    run::<Autodiff<Flex>>(&paths, Tolerances::default(), execution, &Default::default());
}

fn check<B: AutodiffBackend>(
    case: &GoldenCase,
    source: MaskSource,
    tolerances: Tolerances,
    execution: LossExecution,
    device: &B::Device,
) -> Result<GoldenReport, framer::FramerError> {
    check_case_with::<B>(case, source, tolerances, execution, device)
}

fn run<B: AutodiffBackend>(
    paths: &[String],
    tolerances: Tolerances,
    execution: LossExecution,
    device: &B::Device,
) {
    if paths.is_empty() {
        eprintln!("usage: golden CASE.json [CASE.json ...]  (CASE.safetensors beside each)");
        std::process::exit(2);
    }
    let mut all_passed = true;
    for path in paths {
        let case = match GoldenCase::load(path) {
            Ok(case) => case,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        };
        let [s, b, c, h, w] = case.shape;
        println!(
            "{}: S={s} B={b} C={c} H={h} W={w} cutoff={} temperature={}",
            case.name, case.cutoff, case.temperature
        );
        let sources: &[MaskSource] = if case.low_mask.is_some() {
            &[MaskSource::Reference, MaskSource::Own]
        } else {
            &[MaskSource::Own]
        };
        for &source in sources {
            match check::<B>(&case, source, tolerances, execution, device) {
                Ok(report) => {
                    println!("{report}");
                    all_passed &= report.passed();
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(2);
                }
            }
        }
    }
    println!("{}", if all_passed { "all within tolerance" } else { "SOME VALUES OUT OF TOLERANCE" });
    std::process::exit(if all_passed { 0 } else { 1 });
}
