//! The model kinds a binary can train: one registry serves the engine, the CLI and the main job.
//!
//! A [`ModelRegistry`] deserialises a schedule's `[model]` table into the [`ModelConfig`] of its
//! kind and hands it to a [`ConfigTask`] (train, super-resolve, analyse, …), which is generic over
//! the configuration type and so sees the concrete model type. Every [`ModelConfig`] is a
//! registry of one kind; [`Builtin`] knows the three backbones of `framer-backbones`
//! (`backbone = "unet"`, `"dit"` and `"unet2d_condition"`), which take the same path as a user's
//! model.

use std::ops::Range;

use burn::tensor::backend::{AutodiffBackend, Backend};
use framer_backbones::unet::{UNet2DConditionConfig, UNet2DConditionModel};
use framer_backbones::{BackboneConfig, BackboneSpec, DiT, DiTConfig, SrBackbone, TextCondition, UNet, UNetConfig};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::engine::ModelConfig;
use crate::schedule::{Experiment, ScheduleError, suggest};

/// Something to do with the model configuration of a schedule, whatever its type.
pub trait ConfigTask {
    /// What the task returns.
    type Output;
    /// Runs the task with the deserialised `[model]` table.
    fn run<C: ModelConfig>(self, config: C) -> Self::Output;
}

/// The model kinds a binary knows, and how `[model]` selects one.
pub trait ModelRegistry: 'static {
    /// The kinds, as recorded in run folders ([`ModelConfig::KIND`]).
    fn kinds() -> Vec<&'static str>;

    /// Deserialises `experiment`'s `[model]` table into the configuration of its kind and runs
    /// `task` with it.
    ///
    /// # Errors
    /// A [`ScheduleError`] at the offending key (`file:line:col`) for a table that does not
    /// describe a known model.
    fn visit<T: ConfigTask>(experiment: &Experiment, task: T) -> Result<T::Output, ScheduleError>;
}

impl<C: ModelConfig> ModelRegistry for C {
    fn kinds() -> Vec<&'static str> {
        vec![C::KIND]
    }

    fn visit<T: ConfigTask>(experiment: &Experiment, task: T) -> Result<T::Output, ScheduleError> {
        let config: C = deserialize_model(experiment)?;
        Ok(task.run(config))
    }
}

/// `{ model = <T> }`: the `[model]` table of a whole schedule file, other tables ignored.
#[derive(Deserialize)]
struct ModelDoc<T> {
    model: T,
}

/// The text `experiment`'s `[model]` table can be deserialised from with positions: the schedule
/// file it was read from, or (for an experiment changed in code) the table written out alone.
fn model_source(experiment: &Experiment) -> (String, String) {
    if let Some(origin) = &experiment.origin
        && toml::from_str::<ModelDoc<toml::Table>>(&origin.text)
            .is_ok_and(|doc| doc.model == experiment.model)
    {
        return (origin.path.clone(), origin.text.to_string());
    }
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        model: &'a toml::Table,
    }
    let text = toml::to_string(&Doc {
        model: &experiment.model,
    })
    .unwrap_or_default();
    (format!("[model] of experiment {}", experiment.name), text)
}

/// Deserialises `experiment`'s `[model]` table into `T`, with errors at `file:line:col`.
///
/// # Errors
/// The located [`ScheduleError`] of a table `T` rejects.
pub fn deserialize_model<T: DeserializeOwned>(experiment: &Experiment) -> Result<T, ScheduleError> {
    let (path, text) = model_source(experiment);
    parse_model(&path, &text)
}

/// The `[model]` table of the schedule `text` (read from `path`) as `T`, with located errors.
fn parse_model<T: DeserializeOwned>(path: &str, text: &str) -> Result<T, ScheduleError> {
    toml::from_str::<ModelDoc<T>>(text)
        .map(|doc| doc.model)
        .map_err(|e| crate::schedule::convert_toml_error(path, text, &e))
}

/// The backbones of `framer-backbones`, selected by `[model] backbone = "unet" | "dit" |
/// "unet2d_condition"` with a `preset` (default `"tiny"`) or a full `[model.unet]` /
/// `[model.dit]` / `[model.unet2d_condition]` table.
#[derive(Debug, Clone, Copy)]
pub struct Builtin;

/// `[model]` for [`Builtin`], with positions for its errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinTable {
    backbone: Spanned<framer_backbones::BackboneKind>,
    #[serde(default)]
    preset: Option<Spanned<String>>,
    #[serde(default)]
    unet: Option<UNetConfig>,
    #[serde(default)]
    dit: Option<DiTConfig>,
    #[serde(default)]
    unet2d_condition: Option<UNet2DConditionConfig>,
}

impl ModelRegistry for Builtin {
    fn kinds() -> Vec<&'static str> {
        vec![UNetConfig::KIND, DiTConfig::KIND, UNet2DConditionConfig::KIND]
    }

    fn visit<T: ConfigTask>(experiment: &Experiment, task: T) -> Result<T::Output, ScheduleError> {
        let (path, text) = model_source(experiment);
        let table: BuiltinTable = parse_model(&path, &text)?;
        let at = |span: Range<usize>, key: &str, message: String| {
            ScheduleError::at(&path, &text, span, key, message)
        };
        let kind = *table.backbone.get_ref();
        let full_table = table.unet.is_some() || table.dit.is_some() || table.unet2d_condition.is_some();
        let preset = match (&table.preset, full_table) {
            (None, false) => Some(Spanned::new(0..0, "tiny".to_string())),
            (Some(p), false) => Some(p.clone()),
            (None, true) => None,
            (Some(p), true) => {
                return Err(at(
                    p.span(),
                    "model.preset",
                    "`preset` cannot be combined with a full `[model.unet]` / `[model.dit]` / \
                     `[model.unet2d_condition]` table"
                        .into(),
                ));
            }
        };
        let config = match preset {
            Some(name) => {
                let known: &[&str] = match kind {
                    framer_backbones::BackboneKind::UNet => &UNetConfig::PRESETS,
                    framer_backbones::BackboneKind::DiT => &DiTConfig::PRESETS,
                    framer_backbones::BackboneKind::UNetCondition => &UNet2DConditionConfig::PRESETS,
                };
                if !known.contains(&name.get_ref().as_str()) {
                    let mut message =
                        format!("unknown value \"{}\" for `preset` in [model]", name.get_ref());
                    if let Some(s) = suggest(name.get_ref(), known.iter().copied()) {
                        message.push_str(&format!("; did you mean \"{s}\"?"));
                    }
                    let span = if name.span().is_empty() { table.backbone.span() } else { name.span() };
                    return Err(at(span, "model.preset", message).with_help(format!(
                        "expected one of {}",
                        known.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ")
                    )));
                }
                BackboneConfig::preset_of(kind, name.get_ref())
            }
            None => BackboneConfig::try_from(BackboneSpec {
                backbone: kind,
                preset: None,
                unet: table.unet,
                dit: table.dit,
                unet2d_condition: table.unet2d_condition,
            }),
        }
        .map_err(|e| at(table.backbone.span(), "model", e.to_string()))?;
        Ok(match config {
            BackboneConfig::UNet(c) => task.run(c),
            BackboneConfig::DiT(c) => task.run(c),
            BackboneConfig::UNetCondition(c) => task.run(c),
        })
    }
}

/// Checks the common constraints of an [`SrBackbone`] against the schedule's RGB crops.
fn check_backbone_data<B: Backend>(
    model: &impl SrBackbone<B>,
    channels: usize,
    crop_size: usize,
) -> Result<(), String> {
    if model.in_channels() != channels
        || model.lr_channels() != channels
        || model.out_channels() != channels
    {
        return Err(format!(
            "the model works on {}-channel inputs; the schedule trains on {channels}-channel inputs",
            model.in_channels()
        ));
    }
    if !crop_size.is_multiple_of(model.spatial_multiple()) {
        return Err(format!(
            "`data.crop_size` {crop_size} is not a multiple of {}, which the model needs",
            model.spatial_multiple()
        ));
    }
    if let Some(max) = model.max_spatial_size()
        && crop_size > max
    {
        return Err(format!(
            "`data.crop_size` {crop_size} exceeds the largest size the model accepts ({max})"
        ));
    }
    Ok(())
}

impl ModelConfig for UNetConfig {
    const KIND: &'static str = "unet";
    type Model<B: Backend> = UNet<B>;
    type TrainModel<B: AutodiffBackend> = UNet<B>;

    fn init<B: Backend>(&self, device: &B::Device) -> Result<UNet<B>, String> {
        UNetConfig::init(self, device).map_err(|e| e.to_string())
    }

    fn init_train<B: AutodiffBackend>(&self, device: &B::Device) -> Result<UNet<B>, String> {
        UNetConfig::init(self, device).map_err(|e| e.to_string())
    }

    fn check_data(&self, channels: usize, crop_size: usize) -> Result<(), String> {
        // Parameters are lazy: building the module allocates nothing.
        let model = UNetConfig::init::<burn::backend::Flex>(self, &Default::default())
            .map_err(|e| e.to_string())?;
        check_backbone_data(&model, channels, crop_size)
    }
}

impl ModelConfig for DiTConfig {
    const KIND: &'static str = "dit";
    type Model<B: Backend> = DiT<B>;
    type TrainModel<B: AutodiffBackend> = DiT<B>;

    fn init<B: Backend>(&self, device: &B::Device) -> Result<DiT<B>, String> {
        DiTConfig::init(self, device).map_err(|e| e.to_string())
    }

    fn init_train<B: AutodiffBackend>(&self, device: &B::Device) -> Result<DiT<B>, String> {
        DiTConfig::init(self, device).map_err(|e| e.to_string())
    }

    fn check_data(&self, channels: usize, crop_size: usize) -> Result<(), String> {
        let model = DiTConfig::init::<burn::backend::Flex>(self, &Default::default())
            .map_err(|e| e.to_string())?;
        check_backbone_data(&model, channels, crop_size)
    }

    fn prompt_widths(&self) -> Option<[usize; 2]> {
        Some([self.joint_attention_dim?, self.pooled_projection_dim?])
    }

    fn with_prompt<B: Backend>(model: DiT<B>, prompt: TextCondition<B>) -> DiT<B> {
        model.with_prompt(Some(prompt))
    }

    fn with_prompt_train<B: AutodiffBackend>(model: DiT<B>, prompt: TextCondition<B>) -> DiT<B> {
        model.with_prompt(Some(prompt))
    }
}

impl ModelConfig for UNet2DConditionConfig {
    const KIND: &'static str = "unet2d_condition";
    type Model<B: Backend> = UNet2DConditionModel<B>;
    type TrainModel<B: AutodiffBackend> = UNet2DConditionModel<B>;

    fn init<B: Backend>(&self, device: &B::Device) -> Result<UNet2DConditionModel<B>, String> {
        UNet2DConditionConfig::init(self, device).map_err(|e| e.to_string())
    }

    fn init_train<B: AutodiffBackend>(&self, device: &B::Device) -> Result<UNet2DConditionModel<B>, String> {
        UNet2DConditionConfig::init(self, device).map_err(|e| e.to_string())
    }

    fn check_data(&self, channels: usize, crop_size: usize) -> Result<(), String> {
        let model = UNet2DConditionConfig::init::<burn::backend::Flex>(self, &Default::default())
            .map_err(|e| e.to_string())?;
        check_backbone_data(&model, channels, crop_size)
    }

    /// Text tokens of `cross_attention_dim`; no pooled embedding (SD2's text encoder has none).
    fn prompt_widths(&self) -> Option<[usize; 2]> {
        Some([self.cross_attention_dim, 0])
    }

    fn with_prompt<B: Backend>(model: UNet2DConditionModel<B>, prompt: TextCondition<B>) -> UNet2DConditionModel<B> {
        model.with_prompt(Some(prompt))
    }

    fn with_prompt_train<B: AutodiffBackend>(
        model: UNet2DConditionModel<B>,
        prompt: TextCondition<B>,
    ) -> UNet2DConditionModel<B> {
        model.with_prompt(Some(prompt))
    }
}
