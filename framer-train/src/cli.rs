//! The `framer` command line, for any model: `check`, `train`, `encode`, `sr`, `eval` and `analyze`.
//!
//! A program gets the whole command line for its own model in one line:
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     framer_train::cli::main::<MyConfig>()   // MyConfig: framer_train::engine::ModelConfig
//! }
//! ```
//!
//! The `[model]` table of a schedule deserialises into the program's model configuration
//! (through its [`ModelRegistry`]; unknown keys are errors at `file:line:col`), and a run folder
//! records the model's kind, so that `sr` and `analyze` rebuild exactly that model. The `framer`
//! binary itself is `main::<Builtin>()` (the U-Net and the DiT of `framer-backbones`); without a
//! subcommand it runs the main job (`framer demo`): a tiny backbone trained on the embedded photos
//! without and with FRAMER, then compared on held-out photos.
//!
//! `check SCHEDULE.toml` validates a schedule against the model (its configuration, its student
//! taps) and prints the resolved values; `train SCHEDULE.toml` runs it; `sr` super-resolves images
//! with a trained run; `eval` scores results against ground truths (or compares runs); `analyze`
//! plots what the layers of a run predict over the denoising steps and its FAW/FAM weights.

use std::any::TypeId;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::backend::AutodiffBackend;
use clap::{Parser, Subcommand, ValueEnum};

use crate::registry::{Builtin, ModelRegistry};

mod backend;
mod check;
mod encode;
mod train;

use backend::{Device, OnBackend};
pub use check::{CheckReport, check_experiment, check_schedule};
pub use train::{train_experiment, train_schedule};

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
    /// N seeds × {baseline, +FRAMER} (and optionally the paper's ablations) on the main job's
    /// budget: per-seed table, mean ± std, the paired difference with a 95 % t-interval, a
    /// verdict, and plots.
    Study(StudyArgs),
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
        /// Data-parallel peers on this machine (one thread per device), replacing the
        /// schedule's `[distributed] devices`; `[train] batch_size` is the global batch.
        #[arg(long)]
        devices: Option<usize>,
        /// Machines of a multi-node run (one `framer train` each), replacing `[distributed]
        /// nodes`.
        #[arg(long, env = "FRAMER_NODES")]
        nodes: Option<usize>,
        /// This machine's rank, 0 to nodes - 1; node 0 starts the coordinator and writes the run.
        #[arg(long, env = "FRAMER_NODE_RANK")]
        node_rank: Option<usize>,
        /// `host:port` of the coordinator (node 0's address), replacing `[distributed]
        /// coordinator`; the same on every node.
        #[arg(long, env = "FRAMER_COORDINATOR")]
        coordinator: Option<String>,
        /// The address other machines reach this one at (default: this machine's address on
        /// the route to the coordinator). Its tensor service listens on the coordinator's port
        /// + 1 + node rank.
        #[arg(long, env = "FRAMER_NODE_HOST")]
        node_host: Option<String>,
    },
    /// Encode the training crops of a `[latent]` schedule with its VAE, for `train` to read.
    Encode(encode::EncodeArgs),
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

fn sr<R: ModelRegistry>(args: SrArgs) -> Result<(), String> {
    use crate::commands::{
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
    struct Task<'a, R>(&'a RunFiles, &'a SrSettings, std::marker::PhantomData<R>);
    impl<R: ModelRegistry> OnBackend for Task<'_, R> {
        type Output = Vec<PathBuf>;
        fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<Vec<PathBuf>, String> {
            run_sr::<R, B::InnerBackend>(self.0, self.1, device).map_err(|e| e.to_string())
        }
    }
    let written = args.device.run(Task::<R>(&run, &settings, std::marker::PhantomData))?;
    println!("model: {}", run.weights.display());
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn eval(args: EvalArgs) -> Result<(), String> {
    use crate::commands::eval::{EvalSettings, run_eval};
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
    struct Task<'a>(&'a EvalSettings);
    impl OnBackend for Task<'_> {
        type Output = String;
        fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<String, String> {
            run_eval::<B::InnerBackend>(self.0, device).map_err(|e| e.to_string())
        }
    }
    let text = args.device.run(Task(&settings))?;
    print!("{text}");
    Ok(())
}

fn analyze<R: ModelRegistry>(args: AnalyzeArgs) -> Result<(), String> {
    use crate::commands::{
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
    struct Task<'a, R>(&'a RunFiles, &'a AnalyzeSettings, std::marker::PhantomData<R>);
    impl<R: ModelRegistry> OnBackend for Task<'_, R> {
        type Output = crate::commands::analyze::AnalyzeReport;
        fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<Self::Output, String> {
            run_analyze::<R, B::InnerBackend>(self.0, self.1, device).map_err(|e| e.to_string())
        }
    }
    let report = args.device.run(Task::<R>(&run, &settings, std::marker::PhantomData))?;
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

/// The settings shared by `demo` and `study` (defaults: [`crate::demo::DemoOptions::default`]).
#[derive(Debug, Clone, clap::Args)]
struct BudgetArgs {
    /// Backbone: the MMDiT (the reference's FRAMER_D) or the U-Net (FRAMER_U).
    #[arg(long, value_enum, default_value_t = DemoBackboneArg::Unet)]
    backbone: DemoBackboneArg,
    /// What the runs learn: the one-step residual host, or the backbone's multi-step diffusion
    /// objective sampled from the noised LR at `--strength`.
    #[arg(long, value_enum, default_value_t = DemoObjectiveArg::OneStep)]
    objective: DemoObjectiveArg,
    /// The one-step host's fixed level σ in (0, 1] (default: 1).
    #[arg(long)]
    sigma: Option<f64>,
    /// Training steps of each run (default: 250; `--long` makes it 2000).
    #[arg(long)]
    steps: Option<u64>,
    /// A longer run (2000 steps each) for a clearer comparison.
    #[arg(long)]
    long: bool,
    /// Batch size (default: 4).
    #[arg(long)]
    batch_size: Option<usize>,
    /// HR training crop side in pixels, a multiple of 4 (default: 64).
    #[arg(long)]
    crop_size: Option<usize>,
    /// Peak learning rate, cosine-decayed to a tenth (default: 1e-3).
    #[arg(long)]
    lr: Option<f64>,
    /// Sampler steps at inference (`--objective diffusion`; default: 20).
    #[arg(long)]
    sample_steps: Option<usize>,
    /// Where diffusion sampling starts: 1 = pure noise, below 1 = the LR image noised to that
    /// level (`--objective diffusion`; default: 0.4).
    #[arg(long)]
    strength: Option<f64>,
    /// The FRAMER weight λ (default: 0.1).
    #[arg(long)]
    lambda: Option<f64>,
    /// Evaluate an exponential moving average of the weights with this decay (default: none).
    #[arg(long)]
    ema_decay: Option<f64>,
    /// HR side of the held-out centre crops that are super-resolved and scored (default: 256).
    #[arg(long)]
    eval_size: Option<usize>,
    /// HR side of the centre crops of the validation photos (fixed degradations; neither trained
    /// on nor the test set) scored after training, 0 for none (default: 256).
    #[arg(long)]
    validation_size: Option<usize>,
    /// Keep the backbone's default random output layer instead of zero-initialising it (with a
    /// zero output layer the one-step host starts exactly at bicubic).
    #[arg(long)]
    random_head: bool,
    /// Train on the USM-sharpened HR crop (`true`, Real-ESRGAN's GAN recipe) or on the HR crop
    /// itself (`false`, the default); the scores always compare with the unsharpened HR.
    #[arg(long)]
    gt_usm: Option<bool>,
    /// Runs trained at the same time, one thread each (default: one per core, at most 2).
    #[arg(long)]
    jobs: Option<usize>,
    /// Where to train: the CPU (`flex`) or the first CUDA GPU (needs a build with `--features cuda`).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
}

impl Default for BudgetArgs {
    fn default() -> Self {
        Self {
            backbone: DemoBackboneArg::Unet,
            objective: DemoObjectiveArg::OneStep,
            sigma: None,
            steps: None,
            long: false,
            batch_size: None,
            crop_size: None,
            lr: None,
            sample_steps: None,
            strength: None,
            lambda: None,
            ema_decay: None,
            eval_size: None,
            validation_size: None,
            random_head: false,
            gt_usm: None,
            jobs: None,
            device: Device::Cpu,
        }
    }
}

impl BudgetArgs {
    fn options(&self, seed: u64, out: PathBuf) -> crate::demo::DemoOptions {
        use crate::demo::{DemoBackbone, DemoObjective, DemoOptions};
        let d = DemoOptions::default();
        DemoOptions {
            backbone: match self.backbone {
                DemoBackboneArg::Dit => DemoBackbone::Dit,
                DemoBackboneArg::Unet => DemoBackbone::Unet,
            },
            objective: match self.objective {
                DemoObjectiveArg::OneStep => DemoObjective::OneStep {
                    sigma: self.sigma.unwrap_or(match d.objective {
                        DemoObjective::OneStep { sigma } => sigma,
                        DemoObjective::Diffusion => 1.0,
                    }),
                },
                DemoObjectiveArg::Diffusion => DemoObjective::Diffusion,
            },
            steps: self.steps.unwrap_or(if self.long { 2000 } else { d.steps }),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            crop_size: self.crop_size.unwrap_or(d.crop_size),
            lr: self.lr.unwrap_or(d.lr),
            sample_steps: self.sample_steps.unwrap_or(d.sample_steps),
            strength: self.strength.unwrap_or(d.strength),
            seed,
            lambda: self.lambda.unwrap_or(d.lambda),
            ema_decay: self.ema_decay.or(d.ema_decay),
            eval_size: self.eval_size.unwrap_or(d.eval_size),
            validation_size: self.validation_size.unwrap_or(d.validation_size),
            zero_init_out: !self.random_head,
            gt_usm: self.gt_usm.unwrap_or(d.gt_usm),
            jobs: self.jobs.unwrap_or(d.jobs),
            out,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
struct DemoArgs {
    #[command(flatten)]
    budget: BudgetArgs,
    /// Seed of both runs and of the evaluation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Report folder.
    #[arg(long, default_value = "report")]
    out: PathBuf,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            budget: BudgetArgs::default(),
            seed: 0,
            out: PathBuf::from("report"),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
struct StudyArgs {
    #[command(flatten)]
    budget: BudgetArgs,
    /// Number of seeds (0, 1, …, N − 1): each trains every variant.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Also the paper's ablations: FRAMER without FAW, without FAM, and with the radial mask.
    #[arg(long)]
    ablations: bool,
    /// Report folder.
    #[arg(long, default_value = "study")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoBackboneArg {
    Dit,
    Unet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoObjectiveArg {
    OneStep,
    Diffusion,
}

fn study(args: StudyArgs) -> Result<(), String> {
    use crate::study::{StudyOptions, run_study};
    struct Task(StudyOptions);
    impl OnBackend for Task {
        type Output = ();
        fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<(), String> {
            run_study::<B>(&self.0, device).map(|_| ()).map_err(|e| e.to_string())
        }
    }
    let options = StudyOptions {
        base: args.budget.options(0, args.out.clone()),
        seeds: args.seeds,
        ablations: args.ablations,
    };
    args.budget.device.run(Task(options))
}

fn demo(args: DemoArgs) -> Result<(), String> {
    use crate::demo::{DemoOptions, run_demo};
    struct Task(DemoOptions);
    impl OnBackend for Task {
        type Output = ();
        fn run<B: AutodiffBackend>(self, device: &B::Device) -> Result<(), String> {
            run_demo::<B>(&self.0, device).map(|_| ()).map_err(|e| e.to_string())
        }
    }
    args.budget.device.run(Task(args.budget.options(args.seed, args.out.clone())))
}

/// Runs the command line of a program whose models are those of the registry `R` (a single
/// [`ModelConfig`](crate::engine::ModelConfig) is a registry of one), reading the process's arguments.
pub fn main<R: ModelRegistry>() -> ExitCode {
    main_from::<R, _, _>(std::env::args_os())
}

/// [`main`] with explicit arguments (the first is the program name).
pub fn main_from<R, I, T>(args: I) -> ExitCode
where
    R: ModelRegistry,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let builtin = TypeId::of::<R>() == TypeId::of::<Builtin>();
    let command = match cli.command {
        Some(c) => c,
        None if builtin => Command::Demo(DemoArgs::default()),
        None => {
            eprintln!("error: give a command: check, train, sr, eval or analyze (see --help)");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Encode(args) => report(encode::encode(args)),
        Command::Sr(args) => report(sr::<R>(args)),
        Command::Eval(args) => report(eval(args)),
        Command::Analyze(args) => report(analyze::<R>(args)),
        Command::Demo(_) if !builtin => report(Err(
            "`demo` is the main job of the `framer` program (the built-in backbones); this \
             program trains its own model with `train SCHEDULE.toml`"
                .into(),
        )),
        Command::Demo(args) => report(demo(args)),
        Command::Study(_) if !builtin => report(Err(
            "`study` runs the main job's budget on the built-in backbones; this program trains \
             its own model with `train SCHEDULE.toml`"
                .into(),
        )),
        Command::Study(args) => report(study(args)),
        Command::Check { schedule } => match check_schedule::<R>(&schedule) {
            Ok(report) => {
                println!("# {}: valid", schedule.display());
                print!("{report}");
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
            devices,
            nodes,
            node_rank,
            coordinator,
            node_host,
        } => {
            let launch = crate::schedule::Launch { devices, nodes, node_rank, coordinator, node_host };
            match train::train_command::<R>(&schedule, out.as_deref(), launch, device) {
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
