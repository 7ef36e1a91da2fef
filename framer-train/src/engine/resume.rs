//! A [`Trainer`]'s checkpoints: what it writes and how a resumed run restores it exactly.

use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;
use framer::Framed;

use super::{EmaModule, EngineError, SrModel, Trainer, adapters, checkpoint};

impl<B, M> Trainer<'_, B, M>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + SrModel<B>,
    M::InnerModule: SrModel<B::InnerBackend>,
{
    pub(super) fn restore(&mut self, path: &Path) -> Result<(), EngineError> {
        let saved = checkpoint::read_state_file(path)?;
        let state = saved.state;
        if state.seed != self.experiment.train.seed {
            return Err(EngineError::Checkpoint(format!(
                "{} was written with seed {}, the schedule says {}; an exact resume needs the same \
                 seed (or set `[checkpoint] resume = false`)",
                path.display(),
                state.seed,
                self.experiment.train.seed
            )));
        }
        let file = path.join("model.mpk");
        let record = checkpoint::read_record::<B, <Framed<B, M> as Module<B>>::Record>(&file, &self.device)?;
        self.model = checkpoint::load_into(self.model.clone(), record, &file)?;
        let file = path.join("optim.mpk");
        let optim = checkpoint::read_record::<B, _>(&file, &self.device)?;
        self.optim = self.optim.clone().load_record(optim);
        if let Some(ema) = self.ema.take() {
            let file = path.join("ema.mpk");
            self.ema = Some(if file.is_file() {
                let record = checkpoint::read_record::<B::InnerBackend, _>(&file, &self.device)?;
                checkpoint::load_into(ema, record, &file)?
            } else {
                self.model.valid()
            });
        }
        if let Some(lora) = self.lora.as_mut() {
            let file = path.join(adapters::LORA_FILE);
            let record = checkpoint::read_record::<B, _>(&file, &self.device)?;
            lora.adapters = checkpoint::load_into(lora.adapters.clone(), record, &file)?;
            // the loaded model's parameters carry the checkpoint's ids
            lora.adapters
                .retarget(&self.model.model)
                .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", file.display())))?;
            let file = path.join("lora_optim.mpk");
            let record = checkpoint::read_record::<B, _>(&file, &self.device)?;
            lora.optim = lora.optim.clone().load_record(record);
        }
        self.state = state;
        self.consecutive_bad = saved.consecutive_bad;
        Ok(())
    }

    /// Writes a checkpoint of the current state (atomically; see [`checkpoint::save`]).
    pub fn save_checkpoint(&self) -> Result<PathBuf, EngineError> {
        let mut files = checkpoint::CheckpointFiles::default();
        files.module::<B, Framed<B, M>>("model", &self.model)?;
        files.record::<B, _>("optim", self.optim.to_record())?;
        if let Some(ema) = &self.ema {
            files.module::<B::InnerBackend, EmaModule<B, M>>("ema", ema)?;
        }
        if let Some(lora) = &self.lora {
            files.module::<B, crate::lora::LoraAdapters<B>>("lora", &lora.adapters)?;
            files.record::<B, _>("lora_optim", lora.optim.to_record())?;
        }
        checkpoint::save(
            &self.checkpoint_dir(),
            &self.state,
            self.consecutive_bad,
            files,
            self.experiment.checkpoint.keep,
        )
    }
}
