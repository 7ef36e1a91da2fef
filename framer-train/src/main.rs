//! The `framer` command. Without a subcommand it runs the main job (`framer demo`): a tiny backbone
//! trained on the embedded photos without and with FRAMER, then compared on held-out photos.
//! `framer check SCHEDULE.toml` validates a schedule and prints the resolved values;
//! `framer train SCHEDULE.toml` runs it. `framer sr` super-resolves images with a trained run,
//! `framer eval` scores results against ground truths (or compares runs), and `framer analyze`
//! plots what the layers of a run predict over the denoising steps and its FAW/FAM weights.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// FRAMER training for Burn.
#[derive(Debug, Parser)]
#[command(name = "framer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job (the default): train a tiny backbone on the embedded photos without and with
    /// FRAMER (same seed and budget), super-resolve held-out photos, compare, write a report.
    Demo(DemoArgs),
    /// Validate a schedule without training and print the resolved values.
    Check {
        /// The schedule file.
        schedule: PathBuf,
    },
    /// Train the experiment a schedule describes (CPU, `flex` backend).
    Train {
        /// The schedule file.
        schedule: PathBuf,
        /// Folder of the run (metrics, plots, checkpoints); default `runs/<name>`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where to train: the CPU (`flex` backend) or the first CUDA GPU (needs a build with the
        /// `cuda` feature).
        #[arg(long, value_enum, default_value_t = Device::Cpu)]
        device: Device,
    },
    /// Super-resolve an LR image or a folder with a trained run (EMA weights when present).
    Sr(SrArgs),
    /// Score SR images against ground truths (PSNR/SSIM on Y, NIQE), or compare runs.
    Eval(EvalArgs),
    /// Per-layer band energies over the denoising steps (Fig. 2/7) and FAW/FAM over training
    /// (Fig. 9) of a trained run.
    Analyze(AnalyzeArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct SrArgs {
    /// The run folder (written by `framer train`): its latest checkpoint and resolved schedule.
    #[arg(
        long,
        required_unless_present = "checkpoint",
        conflicts_with = "checkpoint"
    )]
    run: Option<PathBuf>,
    /// A checkpoint folder (`step-NNNNNNNN`) or weights file (`.mpk`) instead of `--run`.
    #[arg(long, requires = "schedule")]
    checkpoint: Option<PathBuf>,
    /// The schedule of `--checkpoint`.
    #[arg(long, requires = "checkpoint")]
    schedule: Option<PathBuf>,
    /// An LR image or a folder of them.
    input: PathBuf,
    /// An image file (`.png`, `.jpg`, `.bmp`) for one input image, or a folder; never an input.
    output: PathBuf,
    /// Sampler steps, at least 1 (default: the run's `[objective] sample_steps`).
    #[arg(long)]
    steps: Option<usize>,
    /// Where sampling starts, in (0, 1]: 1 = pure noise, below 1 = the upsampled LR noised to
    /// that level.
    #[arg(long, default_value_t = 0.4, allow_negative_numbers = true)]
    strength: f64,
    /// Seed of the sampling noise (per image and tile).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Tile side at the SR resolution (default: the training crop size).
    #[arg(long)]
    tile: Option<usize>,
    /// Overlap of neighbouring tiles (default: a quarter of the tile).
    #[arg(long)]
    overlap: Option<usize>,
    /// Colour fix against the upsampled LR: adain, wavelet or none.
    #[arg(long, default_value = "adain")]
    color_fix: String,
    /// Where to run the model.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

#[derive(Debug, Clone, clap::Args)]
struct EvalArgs {
    /// Folder of SR images (not with --compare).
    sr_dir: Option<PathBuf>,
    /// Ground-truth folder, paired by file stem.
    #[arg(long)]
    gt: Option<PathBuf>,
    /// Pixels removed from every edge before scoring.
    #[arg(long, default_value_t = 4)]
    crop_border: usize,
    /// Comma-separated metrics: psnr_y, ssim_y, psnr, ssim, niqe, and the network metrics
    /// lpips, musiq, maniqa (computed only from the weight files below, else listed as not
    /// computed).
    #[arg(long, default_value = "psnr_y,ssim_y,niqe")]
    metrics: String,
    /// Also write the table as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Also write the table as Markdown.
    #[arg(long)]
    md: Option<PathBuf>,
    /// Compare runs side by side: NAME=DIR NAME=DIR …
    #[arg(long, num_args = 2..)]
    compare: Vec<String>,
    /// Folder of the comparison's tables and bar chart (default `comparison`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder with the LPIPS weight files: torchvision's backbone (alexnet*.pth, e.g.
    /// alexnet-owt-7be5be79.pth; vgg16*.pth for --lpips-net vgg) and the lpips package's
    /// linear layers (alex.pth / vgg.pth from lpips/weights/v0.1); .safetensors also read.
    /// Adds lpips to --metrics.
    #[arg(long, conflicts_with_all = ["lpips_backbone", "lpips_linear"])]
    lpips_weights: Option<PathBuf>,
    /// LPIPS backbone weights file (instead of --lpips-weights; needs --lpips-linear).
    #[arg(long, requires = "lpips_linear")]
    lpips_backbone: Option<PathBuf>,
    /// LPIPS linear-layer weights file (instead of --lpips-weights; needs --lpips-backbone).
    #[arg(long, requires = "lpips_backbone")]
    lpips_linear: Option<PathBuf>,
    /// LPIPS backbone: alex (the variant papers report) or vgg.
    #[arg(long, default_value = "alex")]
    lpips_net: String,
    /// MUSIQ checkpoint of pyiqa (musiq_koniq_ckpt-e95806b9.pth; the spaq, paq2piq and ava
    /// checkpoints also load). Adds musiq to --metrics.
    #[arg(long)]
    musiq_weights: Option<PathBuf>,
    /// MANIQA checkpoint of pyiqa (ckpt_koniq10k.pt; ckpt_kadid10k.pt and
    /// MANIQA_PIPAL-ae6d356b.pth also load: a name containing "pipal" selects that variant's
    /// settings). Adds maniqa to --metrics.
    #[arg(long)]
    maniqa_weights: Option<PathBuf>,
    /// Where the network metrics (lpips, musiq, maniqa) run; the others always run on the CPU.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

#[derive(Debug, Clone, clap::Args)]
struct AnalyzeArgs {
    /// The run folder.
    #[arg(long)]
    run: PathBuf,
    /// A folder of LR images (default: the embedded held-out photos, degraded).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Output folder (default `RUN/analysis`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Sampler steps (default: the run's `[objective] sample_steps`).
    #[arg(long)]
    steps: Option<usize>,
    /// Where sampling starts: 1 = pure noise (the paper's figures).
    #[arg(long, default_value_t = 1.0)]
    strength: f64,
    /// Seed of the sampling noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to run the model.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

#[cfg(not(feature = "cuda"))]
const NO_CUDA: &str = "this `framer` was built without the `cuda` feature; rebuild with \
                       `cargo build --release --features cuda`";

fn sr(args: SrArgs) -> Result<(), String> {
    use framer_train::commands::{
        RunFiles,
        sr::{SrSettings, run_sr},
    };
    let run = match (&args.run, &args.checkpoint, &args.schedule) {
        (Some(dir), _, _) => RunFiles::from_run_dir(dir),
        (None, Some(c), Some(s)) => RunFiles::from_checkpoint(c, s),
        _ => return Err("give --run RUN_DIR, or --checkpoint PATH with --schedule FILE".into()),
    }
    .map_err(|e| e.to_string())?;
    let settings = SrSettings {
        input: args.input,
        output: args.output,
        steps: args.steps,
        strength: args.strength,
        seed: args.seed,
        tile: args.tile,
        overlap: args.overlap,
        color_fix: args.color_fix,
        progress: true,
    };
    let written = match args.device {
        Device::Cpu => run_sr::<burn::backend::Flex>(&run, &settings, &Default::default()),
        #[cfg(feature = "cuda")]
        Device::Cuda => run_sr::<burn::backend::Cuda>(&run, &settings, &Default::default()),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => return Err(NO_CUDA.into()),
    }
    .map_err(|e| e.to_string())?;
    println!("model: {}", run.weights.display());
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn eval(args: EvalArgs) -> Result<(), String> {
    use framer_train::commands::eval::{EvalSettings, run_eval};
    let settings = EvalSettings {
        sr_dir: args.sr_dir,
        compare: args.compare,
        gt: args.gt,
        crop_border: args.crop_border,
        metrics: args.metrics,
        csv: args.csv,
        md: args.md,
        out: args.out,
        lpips_weights: args.lpips_weights,
        lpips_backbone: args.lpips_backbone,
        lpips_linear: args.lpips_linear,
        lpips_net: args.lpips_net,
        musiq_weights: args.musiq_weights,
        maniqa_weights: args.maniqa_weights,
    };
    let text = match args.device {
        Device::Cpu => run_eval::<burn::backend::Flex>(&settings, &Default::default()),
        #[cfg(feature = "cuda")]
        Device::Cuda => run_eval::<burn::backend::Cuda>(&settings, &Default::default()),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => return Err(NO_CUDA.into()),
    }
    .map_err(|e| e.to_string())?;
    print!("{text}");
    Ok(())
}

fn analyze(args: AnalyzeArgs) -> Result<(), String> {
    use framer_train::commands::{
        RunFiles,
        analyze::{AnalyzeSettings, run_analyze},
    };
    let run = RunFiles::from_run_dir(&args.run).map_err(|e| e.to_string())?;
    let settings = AnalyzeSettings {
        out: args.out.unwrap_or_else(|| args.run.join("analysis")),
        run_dir: args.run,
        images: args.images,
        steps: args.steps,
        strength: args.strength,
        seed: args.seed,
    };
    let report = match args.device {
        Device::Cpu => run_analyze::<burn::backend::Flex>(&run, &settings, &Default::default()),
        #[cfg(feature = "cuda")]
        Device::Cuda => run_analyze::<burn::backend::Cuda>(&run, &settings, &Default::default()),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => return Err(NO_CUDA.into()),
    }
    .map_err(|e| e.to_string())?;
    for p in &report.written {
        println!("wrote {}", p.display());
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    Ok(())
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
struct DemoArgs {
    /// Backbone: the MMDiT (the reference's FRAMER_D) or the U-Net (FRAMER_U).
    #[arg(long, value_enum, default_value_t = DemoBackboneArg::Dit)]
    backbone: DemoBackboneArg,
    /// Training steps of each run (default: 150; `--long` makes it 2000).
    #[arg(long)]
    steps: Option<u64>,
    /// A longer run (2000 steps each) for a clearer comparison.
    #[arg(long)]
    long: bool,
    /// Batch size.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Sampler steps at inference.
    #[arg(long, default_value_t = 20)]
    sample_steps: usize,
    /// Seed of both runs and of the evaluation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where sampling starts: 1 = pure noise, below 1 = the LR image noised to that level.
    #[arg(long, default_value_t = 0.4)]
    strength: f64,
    /// The FRAMER weight λ of the second run.
    #[arg(long, default_value_t = 0.1)]
    lambda: f64,
    /// Report folder.
    #[arg(long, default_value = "report")]
    out: PathBuf,
    /// Where to train: the CPU (`flex`) or the first CUDA GPU (needs a build with `--features cuda`).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            backbone: DemoBackboneArg::Dit,
            steps: None,
            long: false,
            batch_size: 4,
            sample_steps: 20,
            seed: 0,
            strength: 0.4,
            lambda: 0.1,
            out: PathBuf::from("report"),
            device: Device::Cpu,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoBackboneArg {
    Dit,
    Unet,
}

fn demo(args: DemoArgs) -> Result<(), String> {
    use burn::backend::{Autodiff, Flex};
    use framer_train::demo::{DemoBackbone, DemoOptions, run_demo};
    let options = DemoOptions {
        backbone: match args.backbone {
            DemoBackboneArg::Dit => DemoBackbone::Dit,
            DemoBackboneArg::Unet => DemoBackbone::Unet,
        },
        steps: args.steps.unwrap_or(if args.long { 2000 } else { 150 }),
        batch_size: args.batch_size,
        sample_steps: args.sample_steps,
        strength: args.strength,
        seed: args.seed,
        lambda: args.lambda,
        out: args.out,
        ..DemoOptions::default()
    };
    match args.device {
        Device::Cpu => run_demo::<Autodiff<Flex>>(&options, &Default::default()).map(|_| ()),
        #[cfg(feature = "cuda")]
        Device::Cuda => {
            run_demo::<Autodiff<burn::backend::Cuda>>(&options, &Default::default()).map(|_| ())
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => {
            return Err(
                "this `framer` was built without the `cuda` feature; rebuild with \
                        `cargo run --release --features cuda`"
                    .to_string(),
            );
        }
    }
    .map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Device {
    Cpu,
    Cuda,
}

fn train(
    experiment: &framer_train::schedule::Experiment,
    out: &std::path::Path,
    device: Device,
) -> Result<framer_train::RunSummary, String> {
    use burn::backend::{Autodiff, Flex};
    match device {
        Device::Cpu => {
            framer_train::run_experiment::<Autodiff<Flex>>(experiment, out, &Default::default())
                .map_err(|e| e.to_string())
        }
        #[cfg(feature = "cuda")]
        Device::Cuda => framer_train::run_experiment::<Autodiff<burn::backend::Cuda>>(
            experiment,
            out,
            &Default::default(),
        )
        .map_err(|e| e.to_string()),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => Err(
            "this `framer` was built without the `cuda` feature; rebuild with \
                             `cargo build --release --features cuda`"
                .to_string(),
        ),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Demo(DemoArgs::default()));
    match command {
        Command::Sr(args) => report(sr(args)),
        Command::Eval(args) => report(eval(args)),
        Command::Analyze(args) => report(analyze(args)),
        Command::Demo(args) => match demo(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Check { schedule } => match framer_train::schedule::load(&schedule) {
            Ok(experiment) => {
                println!("# {}: valid", schedule.display());
                print!("{experiment}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Train {
            schedule,
            out,
            device,
        } => {
            let experiment = match framer_train::schedule::load(&schedule) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&experiment.name));
            match train(&experiment, &out, device) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
