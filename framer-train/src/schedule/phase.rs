//! Phases: per-step values and linear ramps of the scheduled hyper-parameters.
//!
//! ```toml
//! [[schedule.phase]]      # FRAMER off while the base objective settles
//! start = 0
//! end = 1000
//! lambda = 0.0
//!
//! [[schedule.phase]]      # then ramp λ linearly up to its [framer] value
//! start = 1000
//! end = 2000
//! lambda = { from = 0.0, to = 0.1 }
//! ```
//!
//! A phase covers the steps `start ≤ step < end`; outside every phase the value of the section
//! (`[framer]`, `[optimizer]` with `[lr_schedule]`) applies.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A phase value: a constant, or a linear ramp from `from` at the phase's first step to `to` at its
/// end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Ramp {
    /// The same value at every step of the phase.
    Constant(f64),
    /// `from + (to − from)·(step − start)/(end − start)`.
    Linear {
        /// Value at `start`.
        from: f64,
        /// Value approached at `end` (reached exactly when the phase ends).
        to: f64,
    },
}

impl Ramp {
    /// The value at `step` of a phase covering `[start, end)`.
    pub fn value_at(&self, step: u64, start: u64, end: u64) -> f64 {
        match *self {
            Self::Constant(v) => v,
            Self::Linear { from, to } => {
                let span = end.saturating_sub(start).max(1) as f64;
                let t = (step.saturating_sub(start) as f64 / span).clamp(0.0, 1.0);
                from + (to - from) * t
            }
        }
    }

    /// The values the ramp takes (for range checks).
    pub fn endpoints(&self) -> [f64; 2] {
        match *self {
            Self::Constant(v) => [v, v],
            Self::Linear { from, to } => [from, to],
        }
    }
}

impl<'de> Deserialize<'de> for Ramp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RampVisitor;
        impl<'de> Visitor<'de> for RampVisitor {
            type Value = Ramp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a ramp `{ from = .., to = .. }`")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Ramp, E> {
                Ok(Ramp::Constant(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Ramp, E> {
                Ok(Ramp::Constant(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Ramp, E> {
                Ok(Ramp::Constant(v as f64))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ramp, A::Error> {
                let (mut from, mut to) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "from" => from = Some(map.next_value::<f64>()?),
                        "to" => to = Some(map.next_value::<f64>()?),
                        other => return Err(de::Error::unknown_field(other, &["from", "to"])),
                    }
                }
                match (from, to) {
                    (Some(from), Some(to)) => Ok(Ramp::Linear { from, to }),
                    (None, _) => Err(de::Error::missing_field("from")),
                    (_, None) => Err(de::Error::missing_field("to")),
                }
            }
        }
        deserializer.deserialize_any(RampVisitor)
    }
}

/// One `[[schedule.phase]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSection {
    /// Optional label, shown by `framer check` and in the logs.
    #[serde(default)]
    pub name: Option<String>,
    /// First step of the phase.
    pub start: Spanned<i64>,
    /// One past the last step; absent: the end of training.
    #[serde(default)]
    pub end: Option<Spanned<i64>>,
    /// λ, the weight of the FRAMER term.
    #[serde(default, alias = "lambda_framer", alias = "weight")]
    pub lambda: Option<Spanned<Ramp>>,
    /// Learning rate (replaces `[optimizer] lr` and `[lr_schedule]` inside the phase).
    #[serde(default, alias = "learning_rate")]
    pub lr: Option<Spanned<Ramp>>,
    /// Contrastive temperature τ.
    #[serde(default, alias = "tau_high", alias = "tau")]
    pub temperature: Option<Spanned<Ramp>>,
    /// FAW on or off inside the phase.
    #[serde(default, alias = "faw")]
    pub adaptive_weight: Option<bool>,
    /// FAM on or off inside the phase.
    #[serde(default, alias = "fam")]
    pub alignment_modulation: Option<bool>,
}

/// One resolved segment of a [`StepSchedule`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Segment<T> {
    /// First step.
    pub start: u64,
    /// One past the last step.
    pub end: u64,
    /// The value inside the segment.
    pub value: T,
}

/// A hyper-parameter over training steps: a base value, overridden inside segments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepSchedule<T> {
    /// The value outside every segment.
    pub base: T,
    /// Non-overlapping segments, sorted by `start`.
    pub segments: Vec<Segment<T>>,
}

impl<T: Copy> StepSchedule<T> {
    /// A schedule that is `base` at every step.
    pub fn constant(base: T) -> Self {
        Self {
            base,
            segments: Vec::new(),
        }
    }

    /// The segment covering `step`, if any.
    pub fn segment_at(&self, step: u64) -> Option<&Segment<T>> {
        self.segments
            .iter()
            .find(|s| s.start <= step && step < s.end)
    }
}

impl StepSchedule<bool> {
    /// The value at `step`.
    pub fn value_at(&self, step: u64) -> bool {
        self.segment_at(step).map_or(self.base, |s| s.value)
    }
}

impl StepSchedule<f64> {
    /// The value at `step` (a constant base).
    pub fn value_at(&self, step: u64) -> f64 {
        self.segment_at(step).map_or(self.base, |s| s.value)
    }
}

impl StepSchedule<Ramp> {
    /// The value at `step`: the covering segment's ramp, else the base.
    pub fn value_at(&self, step: u64) -> f64 {
        match self.segment_at(step) {
            Some(s) => s.value.value_at(step, s.start, s.end),
            None => self.base.value_at(step, 0, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_values_worked_by_hand() {
        let r = Ramp::Linear { from: 0.0, to: 0.1 };
        // phase [1000, 2000): t = (step − 1000) / 1000
        assert_eq!(r.value_at(1000, 1000, 2000), 0.0);
        assert!((r.value_at(1250, 1000, 2000) - 0.025).abs() < 1e-15);
        assert!((r.value_at(1500, 1000, 2000) - 0.05).abs() < 1e-15);
        assert!((r.value_at(1999, 1000, 2000) - 0.0999).abs() < 1e-15);
        // decreasing ramp: 1e-4 → 0 over [0, 4): 1e-4, 7.5e-5, 5e-5, 2.5e-5
        let d = Ramp::Linear {
            from: 1e-4,
            to: 0.0,
        };
        let got: Vec<f64> = (0..4).map(|s| d.value_at(s, 0, 4)).collect();
        for (g, e) in got.iter().zip([1e-4, 7.5e-5, 5e-5, 2.5e-5]) {
            assert!((g - e).abs() < 1e-18, "{got:?}");
        }
        assert_eq!(Ramp::Constant(3.0).value_at(7, 0, 4), 3.0);
    }

    #[test]
    fn schedule_uses_base_outside_segments() {
        // λ: 0 for [0, 10), ramp 0 → 0.2 over [10, 20), base 0.2 afterwards
        let s = StepSchedule {
            base: Ramp::Constant(0.2),
            segments: vec![
                Segment {
                    start: 0,
                    end: 10,
                    value: Ramp::Constant(0.0),
                },
                Segment {
                    start: 10,
                    end: 20,
                    value: Ramp::Linear { from: 0.0, to: 0.2 },
                },
            ],
        };
        assert_eq!(s.value_at(0), 0.0);
        assert_eq!(s.value_at(9), 0.0);
        assert_eq!(s.value_at(10), 0.0);
        assert!((s.value_at(15) - 0.1).abs() < 1e-15);
        assert!((s.value_at(19) - 0.18).abs() < 1e-15);
        assert_eq!(s.value_at(20), 0.2);
        assert_eq!(s.value_at(1_000_000), 0.2);
        let b = StepSchedule {
            base: true,
            segments: vec![Segment {
                start: 5,
                end: 6,
                value: false,
            }],
        };
        assert_eq!(
            (0..8).map(|i| b.value_at(i)).collect::<Vec<_>>(),
            [true, true, true, true, true, false, true, true]
        );
    }

    #[test]
    fn ramps_parse_from_numbers_and_tables() {
        #[derive(Deserialize)]
        struct T {
            a: Ramp,
            b: Ramp,
            c: Ramp,
        }
        let t: T = toml::from_str("a = 1\nb = 0.5\nc = { from = 0, to = 2.5 }").unwrap();
        assert_eq!(t.a, Ramp::Constant(1.0));
        assert_eq!(t.b, Ramp::Constant(0.5));
        assert_eq!(t.c, Ramp::Linear { from: 0.0, to: 2.5 });
        let err = toml::from_str::<T>("a = 1\nb = 2\nc = { from = 0 }")
            .err()
            .unwrap();
        assert!(
            err.message().contains("missing field `to`"),
            "{}",
            err.message()
        );
    }
}
