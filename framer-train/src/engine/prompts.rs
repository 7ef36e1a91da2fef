//! The prompt embeddings of `[prompts]` (see [`crate::schedule::PromptsConfig`]): one file per
//! training photo and one for the null prompt, read once, and the prompt of every row of a batch.
//!
//! Row `i` of step `s` is draw `n = s·batch + i` (the draw of its crop): it sees the null prompt
//! when a uniform number drawn from `(seed, n)` ([`Stream::Prompt`]) is below `null_text_ratio`,
//! and its photo's prompt otherwise, so a resumed run sees the same prompts as an uninterrupted
//! one.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use framer_backbones::TextCondition;
use rand::Rng;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

use super::rng::{Stream, step_rng};
use super::{EngineError, ModelConfig};
use crate::schedule::PromptsConfig;

/// The name of the token embeddings in a prompt file (`[M, token width]`), diffusers'.
pub const TOKENS_KEY: &str = "prompt_embeds";
/// The name of the pooled embedding in a prompt file (`[pooled width]`), diffusers'.
pub const POOLED_KEY: &str = "pooled_prompt_embeds";

/// How a model takes a prompt: `model` conditioned on `prompt` in its following forward passes
/// ([`crate::engine::ModelConfig::with_prompt_train`]).
pub type ApplyPrompt<B, M> = fn(M, TextCondition<B>) -> M;

/// One prompt's embeddings, host-side: `tokens` is `[M, widths[0]]` row-major, `pooled`
/// `[widths[1]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptEmbedding {
    /// Token embeddings, `M · widths[0]` values.
    pub tokens: Vec<f32>,
    /// Pooled embedding, `widths[1]` values.
    pub pooled: Vec<f32>,
    /// `M`.
    pub token_count: usize,
}

/// Reads `path`'s `prompt_embeds` (`[M, widths[0]]`, or `[1, M, widths[0]]` as diffusers'
/// `encode_prompt` returns it) and `pooled_prompt_embeds` (`[widths[1]]` or `[1, widths[1]]`; not
/// read when `widths[1]` is 0), f32.
///
/// # Errors
/// [`EngineError::Data`] naming the file and the tensor that is missing or has another shape or
/// dtype.
pub fn read_prompt(path: &Path, widths: [usize; 2]) -> Result<PromptEmbedding, EngineError> {
    let fail = |what: String| EngineError::Data(format!("prompt embeddings {}: {what}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| fail(format!("not a safetensors file ({e})")))?;
    let read = |key: &str, width: usize, rank: usize| -> Result<(Vec<f32>, usize), EngineError> {
        let view = file.tensor(key).map_err(|_| fail(format!("no tensor `{key}`")))?;
        if view.dtype() != Dtype::F32 {
            return Err(fail(format!("`{key}` is {:?}, expected F32", view.dtype())));
        }
        let shape = view.shape();
        let dims: Vec<usize> = if shape.len() == rank + 1 && shape[0] == 1 { shape[1..].to_vec() } else { shape.to_vec() };
        let fits = dims.len() == rank && dims.last() == Some(&width);
        if !fits {
            let expected = if rank == 2 { format!("[M, {width}]") } else { format!("[{width}]") };
            return Err(fail(format!("`{key}` has shape {shape:?}, the model takes {expected}")));
        }
        let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok((values, if rank == 2 { dims[0] } else { 1 }))
    };
    let (tokens, token_count) = read(TOKENS_KEY, widths[0], 2)?;
    // a model without a pooled embedding (pooled width 0) reads none
    let pooled = match widths[1] {
        0 => Vec::new(),
        width => read(POOLED_KEY, width, 1)?.0,
    };
    Ok(PromptEmbedding { tokens, pooled, token_count })
}

/// The prompts of a run: the null prompt and one per training photo.
#[derive(Debug, Clone)]
pub struct Prompts {
    by_photo: HashMap<String, PromptEmbedding>,
    null: PromptEmbedding,
    widths: [usize; 2],
    null_text_ratio: f64,
    seed: u64,
}

impl Prompts {
    /// Reads `config.null` and `config.dir/<photo>.safetensors` for every name in `photos` (file
    /// stems of the training photos), checking them against the model's `widths`
    /// (`[token width, pooled width]`) and against one another (the same token count `M`).
    ///
    /// # Errors
    /// [`EngineError::Data`] naming the missing or ill-shaped file.
    pub fn open(config: &PromptsConfig, photos: &[String], widths: [usize; 2], seed: u64) -> Result<Self, EngineError> {
        if photos.is_empty() {
            return Err(EngineError::Data(
                "`[prompts]` needs the training photos' names, and this run's pairs have none \
                 (a latents folder written before `framer encode` recorded them: encode it again)"
                    .into(),
            ));
        }
        let null = read_prompt(&config.null, widths)?;
        let mut by_photo = HashMap::new();
        for name in photos {
            if by_photo.contains_key(name) {
                continue;
            }
            let path = config.dir.join(format!("{name}.safetensors"));
            if !path.is_file() {
                return Err(EngineError::Data(format!(
                    "no prompt embeddings for the training photo `{name}`: {} does not exist",
                    path.display()
                )));
            }
            let prompt = read_prompt(&path, widths)?;
            if prompt.token_count != null.token_count {
                return Err(EngineError::Data(format!(
                    "prompt embeddings {}: {} tokens, the null prompt ({}) has {}; every prompt of a run \
                     needs the same token count",
                    path.display(),
                    prompt.token_count,
                    config.null.display(),
                    null.token_count
                )));
            }
            by_photo.insert(name.clone(), prompt);
        }
        Ok(Self { by_photo, null, widths, null_text_ratio: config.null_text_ratio, seed })
    }

    /// Whether draw `n` sees the null prompt.
    pub fn is_null(&self, draw: u64) -> bool {
        self.null_text_ratio > 0.0 && step_rng(self.seed, draw, Stream::Prompt).random::<f64>() < self.null_text_ratio
    }

    /// The prompts of a batch whose row `i` is draw `first_draw + i` of photo `photos[i]`:
    /// tokens `[batch, M, widths[0]]`, pooled `[batch, widths[1]]`.
    ///
    /// # Errors
    /// [`EngineError::Data`] when a row's photo has no prompt.
    pub fn batch<B: Backend>(&self, photos: &[String], first_draw: u64, device: &B::Device) -> Result<TextCondition<B>, EngineError> {
        if photos.is_empty() {
            return Err(EngineError::Data(
                "`[prompts]`: the training pairs name no source photos, so no prompt can be chosen".into(),
            ));
        }
        let rows = photos
            .iter()
            .enumerate()
            .map(|(i, name)| {
                if self.is_null(first_draw + i as u64) {
                    Ok(&self.null)
                } else {
                    self.by_photo
                        .get(name)
                        .ok_or_else(|| EngineError::Data(format!("no prompt embeddings for the photo `{name}`")))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(stack(&rows, self.widths, device))
    }

}

/// The prompt widths `[token width, pooled width]` of the model of `config`.
///
/// # Errors
/// A message saying that the model takes no prompt (for `[prompts]` on such a model).
pub fn model_widths<C: ModelConfig>(config: &C) -> Result<[usize; 2], String> {
    config.prompt_widths().ok_or_else(|| {
        format!(
            "`[prompts]`: the `{}` model takes no prompt (a DiT takes one with `joint_attention_dim` \
             and `pooled_projection_dim` in [model.dit])",
            C::KIND
        )
    })
}

/// `prompt` repeated `batch` times: tokens `[batch, M, widths[0]]`, pooled `[batch, widths[1]]`.
pub fn null_condition<B: Backend>(prompt: &PromptEmbedding, widths: [usize; 2], batch: usize, device: &B::Device) -> TextCondition<B> {
    stack(&vec![prompt; batch], widths, device)
}

fn stack<B: Backend>(rows: &[&PromptEmbedding], widths: [usize; 2], device: &B::Device) -> TextCondition<B> {
    let m = rows.first().map_or(0, |r| r.token_count);
    let tokens: Vec<f32> = rows.iter().flat_map(|r| r.tokens.iter().copied()).collect();
    let pooled: Vec<f32> = rows.iter().flat_map(|r| r.pooled.iter().copied()).collect();
    TextCondition {
        tokens: Tensor::from_data(TensorData::new(tokens, [rows.len(), m, widths[0]]), device),
        pooled: Tensor::from_data(TensorData::new(pooled, [rows.len(), widths[1]]), device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use safetensors::tensor::TensorView;

    fn write(path: &Path, tokens: &[f32], m: usize, pooled: &[f32]) {
        let tb: Vec<u8> = tokens.iter().flat_map(|v| v.to_le_bytes()).collect();
        let pb: Vec<u8> = pooled.iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = [
            (TOKENS_KEY, TensorView::new(Dtype::F32, vec![m, tokens.len() / m], &tb).unwrap()),
            (POOLED_KEY, TensorView::new(Dtype::F32, vec![pooled.len()], &pb).unwrap()),
        ];
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    #[test]
    fn rows_take_their_photo_or_the_null_prompt_at_the_schedule_ratio() {
        let dir = std::env::temp_dir().join(format!("framer-prompts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir.join("null.safetensors"), &[0.0; 6], 2, &[0.0, 0.0]);
        write(&dir.join("a.safetensors"), &[1.0; 6], 2, &[1.0, 1.0]);
        write(&dir.join("b.safetensors"), &[2.0; 6], 2, &[2.0, 2.0]);
        let photos = ["a".to_string(), "b".to_string()];
        let config = |ratio| PromptsConfig { dir: dir.clone(), null: dir.join("null.safetensors"), null_text_ratio: ratio };
        let device = Default::default();

        // ratio 0: every row its photo's prompt, in row order
        let prompts = Prompts::open(&config(0.0), &photos, [3, 2], 7).unwrap();
        let rows = ["b", "a", "b"].map(String::from);
        let c = prompts.batch::<Flex>(&rows, 0, &device).unwrap();
        assert_eq!(c.tokens.dims(), [3, 2, 3]);
        assert_eq!(c.pooled.into_data().to_vec::<f32>().unwrap(), [2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
        // ratio 1: the null prompt everywhere
        let all_null = Prompts::open(&config(1.0), &photos, [3, 2], 7).unwrap();
        let c = all_null.batch::<Flex>(&rows, 0, &device).unwrap();
        assert!(c.tokens.into_data().to_vec::<f32>().unwrap().iter().all(|&v| v == 0.0));
        // ratio 0.2: about a fifth of 2000 draws, the same draws for the same seed
        let some = Prompts::open(&config(0.2), &photos, [3, 2], 7).unwrap();
        let nulls: Vec<u64> = (0..2000).filter(|&n| some.is_null(n)).collect();
        assert!((350..450).contains(&nulls.len()), "{}", nulls.len());
        let again = Prompts::open(&config(0.2), &photos, [3, 2], 7).unwrap();
        assert_eq!(nulls, (0..2000).filter(|&n| again.is_null(n)).collect::<Vec<_>>());

        // errors name the file and the tensor
        let e = Prompts::open(&config(0.0), &["c".to_string()], [3, 2], 7).unwrap_err().to_string();
        assert!(e.contains("`c`") && e.contains("c.safetensors"), "{e}");
        let e = Prompts::open(&config(0.0), &photos, [4, 2], 7).unwrap_err().to_string();
        assert!(e.contains("null.safetensors") && e.contains(TOKENS_KEY) && e.contains("[M, 4]"), "{e}");
        write(&dir.join("b.safetensors"), &[2.0; 9], 3, &[2.0, 2.0]);
        let e = Prompts::open(&config(0.0), &photos, [3, 2], 7).unwrap_err().to_string();
        assert!(e.contains("b.safetensors") && e.contains("3 tokens"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
