//! Degrades an image (or the first embedded training photo) and writes the HR, LR and
//! bicubic-upsampled LR as PNGs.
//!
//! `cargo run -p framer-data --release --example degrade -- [INPUT] [OUT_DIR] [SEED] [CROP]`
//! (defaults: embedded photo, `.`, 0, 512; the centre `CROP`² window is degraded).

use framer_data::{DegradationConfig, Degrader, Image, embedded, item_rng, upsample_bicubic};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let img = match args.first().filter(|a| a.as_str() != "-") {
        Some(path) => Image::load(path)?,
        None => embedded::train()?.remove(0).image,
    };
    let out = std::path::PathBuf::from(args.get(1).map(String::as_str).unwrap_or("."));
    let seed: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let crop: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(512);
    let crop = crop.min(img.width()).min(img.height());
    let hr = img.crop(
        (img.width() - crop) / 2,
        (img.height() - crop) / 2,
        crop,
        crop,
    )?;
    let degrader = Degrader::new(DegradationConfig::default())?;
    let pair = degrader.degrade(&hr, &mut item_rng(seed, 0))?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    pair.hr.save_png(out.join("hr.png"))?;
    pair.lr.save_png(out.join("lr.png"))?;
    upsample_bicubic(&pair.lr, degrader.scale())?.save_png(out.join("lr_bicubic.png"))?;
    println!(
        "wrote {}/{{hr,lr,lr_bicubic}}.png (HR {:?}, LR {:?})",
        out.display(),
        pair.hr.shape(),
        pair.lr.shape()
    );
    Ok(())
}
