//! Where each resolved `[framer]` value comes from: the schedule overrides the model's
//! `#[framer(loss(..))]` attribute, which overrides framer's default.

use framer::{BandMaskKind, LossDefault};

use super::resolved::{Experiment, ScheduleOrigin};
use super::students::ValueSource;

/// One resolved `[framer]` value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct FramerValue {
    /// The schedule key (`lambda`, `cutoff`, ...).
    pub key: &'static str,
    /// The value, as TOML would write it.
    pub value: String,
    /// Where it came from.
    pub source: ValueSource,
}

/// The `[framer]` keys a schedule file writes, by canonical name (aliases folded).
fn framer_keys_written(origin: Option<&ScheduleOrigin>) -> Vec<&'static str> {
    let Some(origin) = origin else {
        return Vec::new();
    };
    let Ok(doc) = origin.text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(toml::Value::Table(framer)) = doc.get("framer") else {
        return Vec::new();
    };
    framer
        .keys()
        .filter_map(|k| {
            Some(match k.as_str() {
                "lambda" | "lambda_framer" | "weight" => "lambda",
                "temperature" | "tau_high" | "tau" => "temperature",
                "adaptive_weight" | "faw" => "adaptive_weight",
                "alignment_modulation" | "fam" => "alignment_modulation",
                "mask" | "cutoff" | "radius" => "mask",
                _ => return None,
            })
        })
        .collect()
}

impl Experiment {
    /// This experiment with a model's `#[framer(loss(..))]` defaults applied where the schedule's
    /// `[framer]` table does not set the value itself, and where each resolved value came from.
    pub fn with_model_defaults(
        &self,
        defaults: &[LossDefault],
    ) -> (Experiment, Vec<FramerValue>) {
        let written = framer_keys_written(self.origin.as_ref());
        let mut exp = self.clone();
        let mut sources = vec![
            ("lambda", ValueSource::Default),
            ("mask", ValueSource::Default),
            ("temperature", ValueSource::Default),
            ("adaptive_weight", ValueSource::Default),
            ("alignment_modulation", ValueSource::Default),
        ];
        for (key, source) in &mut sources {
            if written.contains(key) {
                *source = ValueSource::Schedule;
                continue;
            }
            for d in defaults {
                let (lambda, f) = (&mut exp.framer.lambda, &mut exp.framer.loss);
                let applied = match (*d, *key) {
                    (LossDefault::Number("lambda", x), "lambda") => {
                        *lambda = x;
                        true
                    }
                    (LossDefault::Number("cutoff", x), "mask") => {
                        f.mask = BandMaskKind::Quantile { cutoff: x };
                        true
                    }
                    (LossDefault::Number("radius", x), "mask") => {
                        f.mask = BandMaskKind::Radial { radius: x };
                        true
                    }
                    (LossDefault::Number("temperature", x), "temperature") => {
                        f.temperature = x;
                        true
                    }
                    (LossDefault::Flag("adaptive_weight", b), "adaptive_weight") => {
                        f.adaptive_weight = b;
                        true
                    }
                    (LossDefault::Flag("alignment_modulation", b), "alignment_modulation") => {
                        f.alignment_modulation = b;
                        true
                    }
                    _ => false,
                };
                if applied {
                    *source = ValueSource::Attribute;
                }
            }
        }
        let (lambda, f) = (exp.framer.lambda, &exp.framer.loss);
        let values = sources
            .into_iter()
            .flat_map(|(key, source)| {
                let value = |key: &'static str, value: String| FramerValue { key, value, source };
                match key {
                    "lambda" => vec![value("lambda", lambda.to_string())],
                    "mask" => match f.mask {
                        BandMaskKind::Quantile { cutoff } => vec![
                            value("mask", "\"quantile\"".into()),
                            value("cutoff", cutoff.to_string()),
                        ],
                        BandMaskKind::Radial { radius } => vec![
                            value("mask", "\"radial\"".into()),
                            value("radius", radius.to_string()),
                        ],
                    },
                    "temperature" => vec![value("temperature", f.temperature.to_string())],
                    "adaptive_weight" => vec![value("adaptive_weight", f.adaptive_weight.to_string())],
                    _ => vec![value("alignment_modulation", f.alignment_modulation.to_string())],
                }
            })
            .collect();
        (exp, values)
    }
}
