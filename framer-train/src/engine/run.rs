//! The entry points that run an experiment end to end: build the model inside [`Framed`]
//! ([`build_framed`]), prepare the run folder ([`prepare_run_dir`]), train it with a
//! [`Trainer`] ([`run_experiment`], [`run_experiment_with`]), and what a run did
//! ([`RunSummary`]).

use std::fmt;
use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use framer::Framed;

use super::{
    DegradedPhotos, EngineError, ModelConfig, PairSource, SrArgs, SrModel, Trainer, ema,
    run_dir, run_record,
};
use crate::schedule::Experiment;

/// What a finished (or stopped) run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Experiment name.
    pub experiment: String,
    /// First step run in this session (> 0 after a resume).
    pub start_step: u64,
    /// Steps completed in total.
    pub end_step: u64,
    /// Loss of the last step that was not skipped.
    pub final_loss: Option<f64>,
    /// Steps rejected by the NaN/Inf guard in this session.
    pub skipped_steps: u64,
    /// Wall-clock seconds of this session.
    pub seconds: f64,
    /// The metrics file.
    pub metrics: PathBuf,
    /// The loss-curve plot.
    pub plot: PathBuf,
    /// The newest checkpoint.
    pub checkpoint: Option<PathBuf>,
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "experiment {}: steps {}..{} in {:.1} s",
            self.experiment, self.start_step, self.end_step, self.seconds
        )?;
        match self.final_loss {
            Some(l) => writeln!(f, "  final loss {l:.6}")?,
            None => writeln!(f, "  no step completed")?,
        }
        if self.skipped_steps > 0 {
            writeln!(
                f,
                "  {} steps skipped by the NaN/Inf guard",
                self.skipped_steps
            )?;
        }
        writeln!(f, "  metrics    {}", self.metrics.display())?;
        writeln!(f, "  plot       {}", self.plot.display())?;
        if let Some(c) = &self.checkpoint {
            write!(f, "  checkpoint {}", c.display())?;
        }
        Ok(())
    }
}

/// The model `config` describes, ready to train on `experiment`: initial weights drawn after
/// seeding the backend with `[train] seed` (the same schedule gives the same weights), then those
/// of `[init] weights` when the schedule has one
/// ([`super::pretrained::load_initial_weights`]), inside
/// [`Framed`] with its generated heads (built from one run on a sample batch of the schedule's crop
/// size).
///
/// # Errors
/// [`EngineError::Model`] when the configuration does not build or does not fit the schedule's
/// crops; [`EngineError::Taps`] when the sample run records no usable taps.
pub fn build_framed<B: AutodiffBackend, C: ModelConfig>(
    config: &C,
    experiment: &Experiment,
    device: &B::Device,
) -> Result<Framed<B, C::TrainModel<B>>, EngineError> {
    check_model_input(config, experiment).map_err(EngineError::Model)?;
    // The backend's generator is one per process: models built at the same time on several
    // threads (the main job's runs side by side) would interleave their draws. Seeding and
    // drawing every initial value happen under one lock, so the weights depend on the seed only.
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _drawing = INIT.lock().unwrap_or_else(|e| e.into_inner());
    B::seed(device, experiment.train.seed);
    let mut model = config.init_train::<B>(device).map_err(EngineError::Model)?;
    if let Some(init) = &experiment.init {
        // draw every initial value first: the parameters the file lacks then hold exactly what the
        // seed gives them without `[init]`
        ema::materialize(&model);
        super::pretrained::load_initial_weights(&mut model, init)?;
    }
    let framed = Framed::new(model, sample_args(experiment, device), device)?;
    // Parameters are lazy: draw every initial value now, while the seed is fresh.
    ema::materialize(&framed);
    Ok(framed)
}

/// [`ModelConfig::check_data`] on what the model sees ([`Experiment::model_input`]), the message
/// saying so for a latent-space schedule.
///
/// # Errors
/// The model's message on what does not fit.
pub fn check_model_input<C: ModelConfig>(config: &C, experiment: &Experiment) -> Result<(), String> {
    let (channels, side) = experiment.model_input();
    config.check_data(channels, side).map_err(|e| match &experiment.latent {
        Some(latent) => format!(
            "{e} (in the latent space of the `{}` VAE the model sees {channels}-channel \
             {side}×{side} latents of the {crop}² crops: its input, condition and output channels \
             must be {channels})",
            latent.preset,
            crop = experiment.data.crop_size
        ),
        None => e,
    })
}

/// A batch of one zero input of the schedule's training shape ([`Experiment::model_input`]: the
/// crop, or its latent): `(x_t, t = ½, lr_upsampled)`.
pub fn sample_args<B: burn::tensor::backend::Backend>(
    experiment: &Experiment,
    device: &B::Device,
) -> SrArgs<B> {
    let (channels, size) = experiment.model_input();
    let image = Tensor::<B, 4>::zeros([1, channels, size, size], device);
    (
        image.clone(),
        Tensor::<B, 1>::from_floats([0.5], device),
        image,
    )
}

/// The training pairs a schedule describes: the latents of `[latent] latents` (written by
/// `framer encode`), or the degraded photo crops of `[data]` / `[degradation]`.
///
/// # Errors
/// [`EngineError::Data`] naming the folder or file that is missing or does not fit the schedule.
pub fn pair_source(experiment: &Experiment) -> Result<Box<dyn PairSource>, EngineError> {
    Ok(match &experiment.latent {
        Some(latent) => Box::new(super::LatentPairs::open(experiment, latent)?),
        None => Box::new(DegradedPhotos::from_experiment(experiment)?),
    })
}

/// Runs `experiment` on `model` with the pairs of `source`, in `out_dir`, to the end (resuming from
/// a checkpoint there if the schedule allows). Prepare the folder first with [`prepare_run_dir`]
/// ([`run_experiment`] does both).
pub fn run_experiment_with<B, M>(
    experiment: &Experiment,
    model: Framed<B, M>,
    source: Box<dyn PairSource + '_>,
    out_dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<RunSummary, EngineError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B>,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    Trainer::new(experiment, model, source, out_dir, device)?.run(None)
}

/// Prepares the run folder `out_dir` for `experiment` with the model of `config`:
/// `schedule.resolved.toml` and `model.toml` (the model's kind and configuration), from which
/// `sr` and `analyze` rebuild the run's model. A folder that holds a run of another schedule or
/// model is refused before anything is written.
///
/// # Errors
/// [`EngineError::Checkpoint`] naming the differing keys or the other model; I/O errors naming
/// the path.
pub fn prepare_run_dir<C: ModelConfig>(
    out_dir: &Path,
    experiment: &Experiment,
    config: &C,
) -> Result<(), EngineError> {
    // The schedule first: a folder holding another run is refused before anything is written.
    run_dir::prepare_run_dir(out_dir, experiment)?;
    run_record::write(out_dir, config)
}

/// Runs the experiment a schedule describes end to end with the model of `config` (built by
/// [`build_framed`]; its `#[framer(loss(..))]` defaults apply where `[framer]` is silent), the
/// degraded photo crops of `[data]` / `[degradation]`, in `out_dir`
/// (resuming from a checkpoint there if `[checkpoint] resume` allows), or with the latents of
/// `[latent]` ([`pair_source`]).
///
/// The run folder receives `schedule.resolved.toml`, `model.toml` (the model's kind and resolved
/// configuration, from which `sr` and `analyze` rebuild it), the metrics file, `loss.png` and the
/// checkpoints.
pub fn run_experiment<B: AutodiffBackend, C: ModelConfig>(
    config: &C,
    experiment: &Experiment,
    out_dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<RunSummary, EngineError> {
    let (experiment, _) = experiment.with_model_defaults(C::loss_defaults());
    let experiment = &experiment;
    let source = pair_source(experiment)?;
    let model = build_framed::<B, C>(config, experiment, device)?;
    let out_dir = out_dir.as_ref();
    #[cfg(feature = "distributed")]
    super::distributed::check_global_level(&experiment.distributed)?;
    if experiment.lora.is_some() && experiment.distributed.world_size() > 1 {
        return Err(EngineError::Distributed(format!(
            "`[lora]` trains on one device for now; this launch asks for {} peers ([distributed] \
             nodes × devices)",
            experiment.distributed.world_size()
        )));
    }
    if experiment.prompts.is_some() && experiment.distributed.world_size() > 1 {
        return Err(EngineError::Distributed(format!(
            "`[prompts]` trains on one device for now; this launch asks for {} peers ([distributed] \
             nodes × devices)",
            experiment.distributed.world_size()
        )));
    }
    let prompts = open_prompts(config, experiment, source.as_ref())?;
    prepare_run_dir(out_dir, experiment, config)?;
    if experiment.distributed.world_size() > 1 {
        return run_peers(experiment, model, out_dir, device);
    }
    match prompts {
        Some(prompts) => Trainer::new(experiment, model, source, out_dir, device)?
            .with_prompts(prompts, C::with_prompt_train::<B>)
            .run(None),
        None => run_experiment_with(experiment, model, source, out_dir, device),
    }
}

/// The prompts of a `[prompts]` schedule (`None` without one), read for the photos `source` draws
/// from and checked against the widths the model of `config` takes.
///
/// # Errors
/// [`EngineError::Model`] when the model takes no prompt; [`EngineError::Data`] naming a missing
/// or ill-shaped embeddings file.
pub fn open_prompts<C: ModelConfig>(
    config: &C,
    experiment: &Experiment,
    source: &dyn PairSource,
) -> Result<Option<super::prompts::Prompts>, EngineError> {
    let Some(settings) = &experiment.prompts else {
        return Ok(None);
    };
    let widths = super::prompts::model_widths(config).map_err(EngineError::Model)?;
    super::prompts::Prompts::open(settings, &source.photos(), widths, experiment.train.seed).map(Some)
}

/// `[distributed] devices > 1` or `nodes > 1`: one peer per device, each with its own photo
/// source.
#[cfg(feature = "distributed")]
fn run_peers<B, M>(
    experiment: &Experiment,
    model: Framed<B, M>,
    out_dir: &Path,
    device: &B::Device,
) -> Result<RunSummary, EngineError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B> + Send + 'static,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    let shared = std::sync::Arc::new(experiment.clone());
    let sources: super::distributed::PeerSources = std::sync::Arc::new(move |_rank| {
        pair_source(&shared)
    });
    super::distributed::run_data_parallel(experiment, model, sources, out_dir, device).map(|(summary, _)| summary)
}

#[cfg(not(feature = "distributed"))]
fn run_peers<B, M>(
    experiment: &Experiment,
    _model: Framed<B, M>,
    _out_dir: &Path,
    _device: &B::Device,
) -> Result<RunSummary, EngineError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B>,
{
    Err(EngineError::Distributed(format!(
        "`[distributed]` with {} node(s) × {} device(s) needs framer-train's feature `distributed` \
         (on by default); this build has it off",
        experiment.distributed.nodes,
        experiment.distributed.devices
    )))
}
