//! The checks of `[framer]`: the mask and its parameter, λ and τ, the students and their
//! weights, resolved into [`FramerConfig`] (the core [`framer::FramerLossConfig`] plus the
//! schedule's own settings).

use framer::{BandMaskKind, FramerLossConfig};

use super::error::suggest;
use super::resolved::FramerConfig;
use super::sections::{FramerSection, MaskKind, StudentsSpec};
use super::students::{StudentPattern, StudentWeightPattern, Students};
use super::validate::{Ctx, Result};

/// At least 2 students: the message of the schedule's checks.
fn too_few(n: usize) -> String {
    format!("FRAMER needs at least 2 students (each student's negative is another student), got {n}")
}

pub(super) fn framer(f: &FramerSection, ctx: &Ctx<'_>) -> Result<FramerConfig> {
    let lambda = ctx.non_negative("framer.lambda", &f.lambda)?;
    let temperature = ctx.positive("framer.temperature", &f.temperature)?;
    let mask = match f.mask.get_ref() {
        MaskKind::Quantile => {
            if let Some(r) = &f.radius {
                return Err(ctx
                    .err(r.span(), "framer.radius", "`framer.radius` is only used with `mask = \"radial\"`")
                    .with_help("the quantile mask takes `cutoff`; set `mask = \"radial\"` to use `radius`"));
            }
            let cutoff = match &f.cutoff {
                Some(c) => ctx.open("framer.cutoff", c, 0.0, 1.0)?,
                None => 0.2,
            };
            BandMaskKind::Quantile { cutoff }
        }
        MaskKind::Radial => {
            if let Some(c) = &f.cutoff {
                return Err(ctx
                    .err(c.span(), "framer.cutoff", "`framer.cutoff` is only used with `mask = \"quantile\"`")
                    .with_help("the radial mask takes `radius`"));
            }
            let Some(r) = &f.radius else {
                return Err(ctx
                    .err(f.mask.span(), "framer.radius", "`mask = \"radial\"` needs `radius` in [framer]")
                    .with_help("add e.g. `radius = 0.25` (normalised frequency radius in (0, 1))"));
            };
            BandMaskKind::Radial { radius: ctx.open("framer.radius", r, 0.0, 1.0)? }
        }
    };
    Ok(FramerConfig {
        enabled: f.enabled,
        lambda,
        loss: FramerLossConfig {
            mask,
            temperature,
            adaptive_weight: f.adaptive_weight,
            alignment_modulation: f.alignment_modulation,
            ..FramerLossConfig::new()
        },
        students: students(f, ctx)?,
        student_weights: student_weights(f, ctx)?,
    })
}

fn students(f: &FramerSection, ctx: &Ctx<'_>) -> Result<Students> {
    let key = "framer.students";
    let span = f.students.span();
    match f.students.get_ref() {
        StudentsSpec::Named(n) if n == "all" => Ok(Students::All),
        StudentsSpec::Named(n) => {
            let mut message = format!("unknown value \"{n}\" for `students` in [framer]");
            if suggest(n, ["all"]).is_some() {
                message.push_str("; did you mean \"all\"?");
            }
            Err(ctx.err(span, key, message).with_help(
                "expected \"all\", a list of tap names or globs such as [\"down_blocks.*\", \"mid_block\"], or of indices such as [0, 2, 4]",
            ))
        }
        StudentsSpec::Patterns(names) => {
            let mut patterns: Vec<StudentPattern> = Vec::new();
            for name in names {
                let (pattern, at) = (name.get_ref(), name.span());
                if pattern.trim().is_empty() {
                    return Err(ctx.err(at, key, "`framer.students` holds an empty name"));
                }
                if patterns.iter().any(|p| &p.pattern == pattern) {
                    return Err(ctx.err(at, key, format!("`framer.students` lists \"{pattern}\" twice")));
                }
                patterns.push(StudentPattern { pattern: pattern.clone(), span: at });
            }
            if patterns.is_empty() {
                return Err(ctx.err(span, key, too_few(0)));
            }
            Ok(Students::Patterns(patterns))
        }
        StudentsSpec::Indices(ix) => {
            if let Some(i) = ix.iter().find(|&&i| i < 0) {
                return Err(ctx.err(span, key, format!("`framer.students` holds a negative index ({i})")));
            }
            let mut sorted: Vec<usize> = ix.iter().map(|&i| i as usize).collect();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(ctx.err(span, key, format!("`framer.students` lists tap {} twice", w[0])));
            }
            if sorted.len() < 2 {
                return Err(ctx.err(span, key, too_few(sorted.len())));
            }
            Ok(Students::Indices(sorted))
        }
    }
}

/// `student_weights`: non-empty patterns with finite weights `≥ 0`, each written once.
fn student_weights(f: &FramerSection, ctx: &Ctx<'_>) -> Result<Vec<StudentWeightPattern>> {
    let key = "framer.student_weights";
    let mut out: Vec<StudentWeightPattern> = Vec::new();
    for (pattern, weight) in &f.student_weights.0 {
        let (name, at) = (pattern.get_ref(), pattern.span());
        if name.trim().is_empty() {
            return Err(ctx.err(at, key, "`framer.student_weights` holds an empty name"));
        }
        let weight = ctx
            .non_negative(key, weight)
            .map_err(|e| e.with_help("a student's weight multiplies its layer term in the loss; 1 is the default"))?;
        out.push(StudentWeightPattern { pattern: name.clone(), weight, span: at });
    }
    Ok(out)
}
