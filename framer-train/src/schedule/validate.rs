//! Range and consistency checks, and the resolution of a [`ScheduleFile`] into an [`Experiment`].

use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::error::ScheduleError;
use super::phase::{PhaseSection, Ramp};
use super::resolved::*;
use super::sections::*;
use super::spans::Spans;

/// What the checks need to point at the file.
pub(crate) struct Ctx<'a> {
    pub path: &'a str,
    pub source: &'a str,
    pub base_dir: &'a Path,
}

pub(super) type Result<T> = std::result::Result<T, ScheduleError>;

impl Ctx<'_> {
    pub(super) fn err(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> ScheduleError {
        ScheduleError::at(self.path, self.source, span, key, message)
    }

    pub(super) fn finite(&self, key: &str, v: &Spanned<f64>) -> Result<f64> {
        let x = *v.get_ref();
        if !x.is_finite() {
            return Err(self.err(
                v.span(),
                key,
                format!("expected `{key}` to be a finite number, got {x}"),
            ));
        }
        Ok(x)
    }

    /// `lo < x < hi`.
    pub(super) fn open(&self, key: &str, v: &Spanned<f64>, lo: f64, hi: f64) -> Result<f64> {
        let x = self.finite(key, v)?;
        if !(x > lo && x < hi) {
            return Err(self.err(
                v.span(),
                key,
                format!("expected `{key}` in ({lo}, {hi}), got {x}"),
            ));
        }
        Ok(x)
    }

    /// `lo ≤ x < hi`.
    pub(super) fn half_open(&self, key: &str, v: &Spanned<f64>, lo: f64, hi: f64) -> Result<f64> {
        let x = self.finite(key, v)?;
        if !(x >= lo && x < hi) {
            return Err(self.err(
                v.span(),
                key,
                format!("expected `{key}` in [{lo}, {hi}), got {x}"),
            ));
        }
        Ok(x)
    }

    pub(super) fn positive(&self, key: &str, v: &Spanned<f64>) -> Result<f64> {
        let x = self.finite(key, v)?;
        if x <= 0.0 {
            return Err(self.err(v.span(), key, format!("expected `{key}` > 0, got {x}")));
        }
        Ok(x)
    }

    pub(super) fn non_negative(&self, key: &str, v: &Spanned<f64>) -> Result<f64> {
        let x = self.finite(key, v)?;
        if x < 0.0 {
            return Err(self.err(v.span(), key, format!("expected `{key}` ≥ 0, got {x}")));
        }
        Ok(x)
    }

    pub(super) fn count(&self, key: &str, v: &Spanned<i64>, min: i64) -> Result<u64> {
        let x = *v.get_ref();
        if x < min {
            return Err(self.err(v.span(), key, format!("expected `{key}` ≥ {min}, got {x}")));
        }
        Ok(x as u64)
    }

    fn ramp(
        &self,
        key: &str,
        v: &Spanned<Ramp>,
        check: impl Fn(f64) -> bool,
        what: &str,
    ) -> Result<Ramp> {
        for x in v.get_ref().endpoints() {
            if !x.is_finite() || !check(x) {
                return Err(self.err(v.span(), key, format!("expected `{key}` {what}, got {x}")));
            }
        }
        Ok(*v.get_ref())
    }

    pub(super) fn folder(&self, key: &str, v: &Spanned<std::path::PathBuf>) -> Result<std::path::PathBuf> {
        self.existing(key, v, true, "paths are relative to the schedule file's folder")
    }

    /// `v` resolved against the schedule's folder; it must be a folder (`dir`) or a file.
    pub(super) fn existing(&self, key: &str, v: &Spanned<std::path::PathBuf>, dir: bool, help: &str) -> Result<std::path::PathBuf> {
        let resolved = self.base_dir.join(v.get_ref());
        if if dir { !resolved.is_dir() } else { !resolved.is_file() } {
            let (shown, kind) = (v.get_ref().display(), if dir { "folder" } else { "file" });
            let message = format!("`{key}` = \"{shown}\" is not a {kind} (looked for {})", resolved.display());
            return Err(self.err(v.span(), key, message).with_help(help));
        }
        Ok(resolved)
    }
}

pub(crate) fn resolve(file: ScheduleFile, ctx: &Ctx<'_>) -> Result<Experiment> {
    let train = train(&file.train, ctx)?;
    let model = file.model.clone();
    let data = data(&file.data, ctx)?;
    let objective = objective(&file.objective, ctx)?;
    let framer = super::validate_framer::framer(&file.framer, ctx)?;
    let optimizer = optimizer(&file.optimizer, ctx)?;
    let lr_schedule = lr_schedule(&file.lr_schedule, &optimizer, &train, ctx)?;
    let c = &file.checkpoint;
    let checkpoint = CheckpointConfig {
        every: ctx.count("checkpoint.every", &c.every, 1)?,
        dir: checkpoint_dir(&c.dir, ctx)?,
        resume: c.resume,
        keep: ctx.count("checkpoint.keep", &c.keep, 1)? as usize,
    };
    let l = &file.logging;
    let logging = LoggingConfig {
        every: ctx.count("logging.every", &l.every, 1)?,
        format: l.format,
        plot_every: ctx.count("logging.plot_every", &l.plot_every, 0)?,
        progress: l.progress,
    };
    let phases = phases(&file.schedule.phase, &train, ctx)?;
    if !matches!(
        file.objective.kind,
        ObjectiveKind::RectifiedFlow | ObjectiveKind::OneStep
    ) && objective.sample_steps > objective.num_train_timesteps
    {
        {
            let v = &file.objective.sample_steps;
            return Err(ctx.err(
                v.span(),
                "objective.sample_steps",
                format!(
                    "expected `objective.sample_steps` ≤ `num_train_timesteps` ({}), got {}",
                    objective.num_train_timesteps, objective.sample_steps
                ),
            ));
        }
    }
    let degradation = degradation(file.degradation, &file.data, &data, ctx)?;
    let distributed = super::distributed::resolve(&file.distributed, train.batch_size, ctx)?;
    let latent = file.latent.as_ref().map(|s| super::latent::resolve(s, data.crop_size, ctx)).transpose()?;
    let init = file.init.as_ref().map(|s| super::init::resolve(s, ctx)).transpose()?;
    let lora = file.lora.as_ref().map(|s| super::lora::resolve(s, train.ema_decay.is_some(), ctx)).transpose()?;
    let prompts = file.prompts.as_ref().map(|s| super::prompts::resolve(s, ctx)).transpose()?;
    let name = match &file.name {
        Some(name) => experiment_name(name, ctx)?,
        None => Path::new(ctx.path)
            .file_stem()
            .map_or("experiment".into(), |s| s.to_string_lossy().into_owned()),
    };
    Ok(Experiment {
        name,
        model,
        data,
        degradation,
        objective,
        framer,
        optimizer,
        lr_schedule,
        train,
        checkpoint,
        logging,
        phases,
        distributed,
        latent,
        init,
        lora,
        prompts,
        origin: Some(ScheduleOrigin {
            path: ctx.path.to_string(),
            text: ctx.source.into(),
        }),
    })
}

fn degradation(
    section: Option<Spanned<framer_data::DegradationConfig>>,
    written: &DataSection,
    data: &DataConfig,
    ctx: &Ctx<'_>,
) -> Result<framer_data::DegradationConfig> {
    let Some(section) = section else {
        return Ok(framer_data::DegradationConfig {
            scale: data.scale,
            ..Default::default()
        });
    };
    let table_span = section.span();
    let mut config = section.into_inner();
    if let Some(span) = Spans::parse(ctx.source).key(&["degradation", "scale"])
        && config.scale != data.scale
    {
        return Err(ctx
            .err(
                span,
                "degradation.scale",
                format!(
                    "`degradation.scale` ({}) differs from `data.scale` ({})",
                    config.scale, data.scale
                ),
            )
            .with_help(if written.scale.span().is_empty() {
                "`data.scale` defaults to 4; set it, or remove `scale` from [degradation]"
            } else {
                "remove `scale` from [degradation]: it follows `data.scale`"
            }));
    }
    config.scale = data.scale;
    if let Err(e) = config.validate() {
        let (key, message) = match e {
            framer_data::DataError::Config { key, message } => (key.to_string(), message),
            other => (String::new(), other.to_string()),
        };
        let span = Spans::parse(ctx.source).key(&["degradation", &key]).unwrap_or(table_span);
        return Err(ctx.err(
            span,
            &format!("degradation.{key}"),
            format!("`degradation.{key}` {message}"),
        ));
    }
    Ok(config)
}

/// The experiment's name names its run folder `runs/<name>`: one plain path component.
fn experiment_name(v: &Spanned<String>, ctx: &Ctx<'_>) -> Result<String> {
    let name = v.get_ref();
    let why = if name.trim().is_empty() {
        Some("is empty")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if name == "." || name == ".." {
        Some("names a relative folder")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    };
    match why {
        Some(why) => Err(ctx
            .err(
                v.span(),
                "name",
                format!("`name` = {name:?} {why}; it names the run folder `runs/<name>`"),
            )
            .with_help(
                "use a plain name such as \"dit-tiny-framer\" (letters, digits, `-`, `_`, `.`)",
            )),
        None => Ok(name.clone()),
    }
}

/// `checkpoint.dir` is a folder inside the run folder: relative, without `..`.
fn checkpoint_dir(v: &Spanned<std::path::PathBuf>, ctx: &Ctx<'_>) -> Result<std::path::PathBuf> {
    use std::path::Component;
    let dir = v.get_ref();
    let why = if dir.as_os_str().is_empty() {
        Some("is empty")
    } else if dir.is_absolute() || dir.has_root() {
        Some("is an absolute path")
    } else if dir
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
    {
        Some("leaves the run folder (`..`)")
    } else {
        None
    };
    match why {
        Some(why) => Err(ctx
            .err(
                v.span(),
                "checkpoint.dir",
                format!(
                    "`checkpoint.dir` = \"{}\" {why}; checkpoints live inside the run folder",
                    dir.display()
                ),
            )
            .with_help("give a folder relative to the run folder, such as \"checkpoints\"")),
        None => Ok(dir.clone()),
    }
}

fn train(t: &TrainSection, ctx: &Ctx<'_>) -> Result<TrainConfig> {
    Ok(TrainConfig {
        steps: ctx.count("train.steps", &t.steps, 1)?,
        batch_size: ctx.count("train.batch_size", &t.batch_size, 1)? as usize,
        seed: t.seed,
        ema_decay: match &t.ema_decay {
            Some(v) => Some(ctx.half_open("train.ema_decay", v, 0.0, 1.0)?),
            None => None,
        },
        max_bad_steps: ctx.count("train.max_bad_steps", &t.max_bad_steps, 1)?,
        trainable: super::trainable::validate(t, ctx)?,
        mixed_precision: t.mixed_precision,
    })
}

fn data(d: &DataSection, ctx: &Ctx<'_>) -> Result<DataConfig> {
    let crop_size = ctx.count("data.crop_size", &d.crop_size, 1)? as usize;
    let scale = ctx.count("data.scale", &d.scale, 1)? as usize;
    if scale > 8 {
        return Err(ctx.err(
            d.scale.span(),
            "data.scale",
            format!("expected `data.scale` in 1..=8, got {scale}"),
        ));
    }
    if !crop_size.is_multiple_of(scale) {
        return Err(ctx.err(
            d.crop_size.span(),
            "data.crop_size",
            format!("`data.crop_size` ({crop_size}) must be a multiple of `data.scale` ({scale})"),
        ));
    }
    let hr_dir = match &d.hr_dir {
        Some(v) => {
            let dir = ctx.folder("data.hr_dir", v)?;
            training_photos(v, &dir, crop_size, ctx)?;
            Some(dir)
        }
        None => None,
    };
    Ok(DataConfig {
        hr_dir,
        crop_size,
        scale,
    })
}

/// The photos of `[data] hr_dir` (the folder `dir`): at least one, and each with a readable
/// image header and large enough for the crop, as training will load them. Only the headers are
/// read.
fn training_photos(
    v: &Spanned<std::path::PathBuf>,
    dir: &Path,
    crop_size: usize,
    ctx: &Ctx<'_>,
) -> Result<()> {
    let at = |message: String| {
        ctx.err(v.span(), "data.hr_dir", message)
            .with_help("training loads every image of the folder (not its sub-folders)")
    };
    let files = match framer_data::dataset::list_images(dir) {
        Ok(files) => files,
        Err(framer_data::DataError::EmptyFolder { .. }) => {
            return Err(at(format!(
                "`data.hr_dir` folder {} holds no image file ({})",
                dir.display(),
                framer_data::dataset::IMAGE_EXTENSIONS.join(", ")
            )));
        }
        Err(e) => return Err(at(format!("`data.hr_dir`: {e}"))),
    };
    let halve = framer_data::TrainPairsOptions::default().halve_min_side;
    for file in &files {
        let size = image::ImageReader::open(file)
            .and_then(|r| r.with_guessed_format())
            .map_err(image::ImageError::IoError)
            .and_then(|r| r.into_dimensions());
        let (w, h) = match size {
            Ok((w, h)) if w > 0 && h > 0 => (w as usize, h as usize),
            Ok((w, h)) => {
                return Err(at(format!(
                    "`data.hr_dir`: {} has size {w}x{h}",
                    file.display()
                )));
            }
            Err(e) => {
                return Err(at(format!(
                    "`data.hr_dir` folder {}: {} is not a readable image ({e})",
                    dir.display(),
                    file.display()
                )));
            }
        };
        let (w, h) = match halve {
            Some(min_side) if w.min(h) >= min_side => (w / 2, h / 2),
            _ => (w, h),
        };
        if w < crop_size || h < crop_size {
            return Err(at(format!(
                "`data.hr_dir`: {} is {w}x{h} (as loaded for training), smaller than \
                 `data.crop_size` = {crop_size}",
                file.display()
            )));
        }
    }
    Ok(())
}

fn objective(o: &ObjectiveSection, ctx: &Ctx<'_>) -> Result<ObjectiveConfig> {
    let beta_start = ctx.open("objective.beta_start", &o.beta_start, 0.0, 1.0)?;
    let beta_end = ctx.open("objective.beta_end", &o.beta_end, 0.0, 1.0)?;
    if beta_start >= beta_end {
        return Err(ctx.err(
            o.beta_end.span(),
            "objective.beta_end",
            format!("expected `objective.beta_end` > `beta_start` ({beta_start}), got {beta_end}"),
        ));
    }
    Ok(ObjectiveConfig {
        kind: o.kind,
        sigma_sampling: o.sigma_sampling,
        logit_mean: ctx.finite("objective.logit_mean", &o.logit_mean)?,
        logit_std: ctx.positive("objective.logit_std", &o.logit_std)?,
        num_train_timesteps: ctx.count(
            "objective.num_train_timesteps",
            &o.num_train_timesteps,
            2,
        )? as usize,
        beta_schedule: o.beta_schedule,
        beta_start,
        beta_end,
        sample_steps: ctx.count("objective.sample_steps", &o.sample_steps, 1)? as usize,
        one_step_sigma: {
            let key = "objective.one_step_sigma";
            let sigma = ctx.positive(key, &o.one_step_sigma)?;
            if sigma > 1.0 {
                return Err(ctx.err(
                    o.one_step_sigma.span(),
                    key,
                    format!("expected `{key}` in (0, 1], got {sigma}"),
                ));
            }
            sigma
        },
    })
}

fn optimizer(o: &OptimizerSection, ctx: &Ctx<'_>) -> Result<OptimizerConfig> {
    Ok(OptimizerConfig {
        lr: ctx.positive("optimizer.lr", &o.lr)?,
        beta1: ctx.half_open("optimizer.beta1", &o.beta1, 0.0, 1.0)?,
        beta2: ctx.half_open("optimizer.beta2", &o.beta2, 0.0, 1.0)?,
        weight_decay: ctx.non_negative("optimizer.weight_decay", &o.weight_decay)?,
        eps: ctx.positive("optimizer.eps", &o.eps)?,
        max_grad_norm: match &o.max_grad_norm {
            Some(v) => Some(
                ctx.positive("optimizer.max_grad_norm", v)
                    .map_err(|e| e.with_help("remove `max_grad_norm` to train without clipping"))?,
            ),
            None => None,
        },
    })
}

fn lr_schedule(
    s: &LrScheduleSection,
    opt: &OptimizerConfig,
    train: &TrainConfig,
    ctx: &Ctx<'_>,
) -> Result<LrScheduleConfig> {
    let warmup_steps = ctx.count("lr_schedule.warmup_steps", &s.warmup_steps, 0)?;
    if warmup_steps > train.steps {
        return Err(ctx.err(
            s.warmup_steps.span(),
            "lr_schedule.warmup_steps",
            format!(
                "`lr_schedule.warmup_steps` ({warmup_steps}) exceeds `train.steps` ({})",
                train.steps
            ),
        ));
    }
    let min_lr = ctx.non_negative("lr_schedule.min_lr", &s.min_lr)?;
    if min_lr > opt.lr {
        return Err(ctx.err(
            s.min_lr.span(),
            "lr_schedule.min_lr",
            format!(
                "expected `lr_schedule.min_lr` ≤ `optimizer.lr` ({}), got {min_lr}",
                opt.lr
            ),
        ));
    }
    Ok(LrScheduleConfig {
        kind: s.kind,
        warmup_steps,
        min_lr,
    })
}

fn phases(list: &[PhaseSection], train: &TrainConfig, ctx: &Ctx<'_>) -> Result<Vec<Phase>> {
    let mut out: Vec<Phase> = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        let key = |k: &str| format!("schedule.phase[{i}].{k}");
        let start = ctx.count(&key("start"), &p.start, 0)?;
        let end = match &p.end {
            Some(e) => {
                let end = *e.get_ref();
                if end <= start as i64 {
                    return Err(ctx.err(
                        e.span(),
                        &key("end"),
                        format!(
                            "phase {} ends at step {end}, not after its start ({start})",
                            i + 1
                        ),
                    ));
                }
                if end as u64 > train.steps {
                    return Err(ctx.err(
                        e.span(),
                        &key("end"),
                        format!(
                            "phase {} ends at step {end}, after the last step (`train.steps` = {})",
                            i + 1,
                            train.steps
                        ),
                    ));
                }
                end as u64
            }
            None => train.steps,
        };
        if start >= train.steps {
            return Err(ctx.err(
                p.start.span(),
                &key("start"),
                format!(
                    "phase {} starts at step {start}, after training ends (`train.steps` = {})",
                    i + 1,
                    train.steps
                ),
            ));
        }
        if let Some(prev) = out.last()
            && start < prev.end
        {
            return Err(ctx
                .err(
                    p.start.span(),
                    &key("start"),
                    format!(
                        "phase {} starts at step {start}, before phase {} ends ({})",
                        i + 1,
                        i,
                        prev.end
                    ),
                )
                .with_help("phases must be listed in step order and must not overlap"));
        }
        let lambda = p
            .lambda
            .as_ref()
            .map(|v| ctx.ramp(&key("lambda"), v, |x| x >= 0.0, "≥ 0"))
            .transpose()?;
        let lr =
            p.lr.as_ref()
                .map(|v| ctx.ramp(&key("lr"), v, |x| x >= 0.0, "≥ 0"))
                .transpose()?;
        let temperature = p
            .temperature
            .as_ref()
            .map(|v| ctx.ramp(&key("temperature"), v, |x| x > 0.0, "> 0"))
            .transpose()?;
        if lambda.is_none()
            && lr.is_none()
            && temperature.is_none()
            && p.adaptive_weight.is_none()
            && p.alignment_modulation.is_none()
        {
            return Err(ctx
                .err(p.start.span(), &format!("schedule.phase[{i}]"), format!("phase {} sets no value", i + 1))
                .with_help("a phase sets one or more of `lambda`, `lr`, `temperature`, `adaptive_weight`, `alignment_modulation`"));
        }
        out.push(Phase {
            name: p.name.clone(),
            start,
            end,
            lambda,
            lr,
            temperature,
            adaptive_weight: p.adaptive_weight,
            alignment_modulation: p.alignment_modulation,
        });
    }
    Ok(out)
}
