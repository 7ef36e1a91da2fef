//! Reads framer-iqa's `.pth` fixtures with burn-store 0.21.0's `PytorchReader` and prints what it
//! returns for the cases framer-iqa's own reader is tested on: a transposed view (strides
//! `(1, 3)` over `arange(6)`), files cut short by a few bytes, and every 13th truncation and byte
//! flip of each fixture (result, error or panic).
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use burn_store::pytorch::PytorchReader;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// `Ok(Some(values))` for a readable tensor, `Ok(None)` for a missing one, `Err` for an error.
fn read(path: &Path, key: &str) -> Result<Option<Vec<f64>>, String> {
    let reader = PytorchReader::new(path).map_err(|e| e.to_string())?;
    let Some(snapshot) = reader.get(key) else {
        return Ok(None);
    };
    let data = snapshot.to_data().map_err(|e| format!("{e:?}"))?;
    let data = data.convert::<f64>();
    Ok(Some(data.to_vec::<f64>().map_err(|e| format!("{e:?}"))?))
}

/// Reads every tensor of the file; `Err` names the first error.
fn read_all(path: &Path) -> Result<usize, String> {
    let reader = PytorchReader::new(path).map_err(|e| e.to_string())?;
    for key in reader.keys() {
        reader.get(&key).unwrap().to_data().map_err(|e| format!("{key}: {e:?}"))?;
    }
    Ok(reader.len())
}

fn main() {
    let dir = fixtures();
    let tmp = std::env::temp_dir().join(format!("pytorch-reader-probe-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    // quiet panics: they are counted below
    std::panic::set_hook(Box::new(|_| {}));

    for name in ["lpips-alex-linear-legacy.pth", "lpips-alex-linear-zip.pth"] {
        let path = dir.join(name);
        println!("{name}: extra.transposed = {:?} (torch: [0, 3, 1, 4, 2, 5])", read(&path, "extra.transposed"));
        let bytes = std::fs::read(&path).unwrap();
        for cut in [4usize, 8, 16] {
            let short = tmp.join(format!("short-{cut}-{name}"));
            std::fs::write(&short, &bytes[..bytes.len() - cut]).unwrap();
            let outcome = catch_unwind(AssertUnwindSafe(|| read(&short, "extra.double")));
            println!(
                "{name} without its last {cut} bytes: extra.double = {:?} (file: [0.25, -1.5]); all tensors: {:?}",
                outcome.as_ref().map_err(|_| "panic"),
                catch_unwind(AssertUnwindSafe(|| read_all(&short))).map_err(|_| "panic"),
            );
        }
    }

    for name in ["lpips-alex-linear-legacy.pth", "lpips-alex-linear-zip.pth", "lpips-v0.1-alex.pth"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let probe = tmp.join(format!("probe-{name}"));
        let truncations: Vec<Vec<u8>> = (0..bytes.len()).step_by(13).map(|n| bytes[..n].to_vec()).collect();
        let flips: Vec<Vec<u8>> = (0..bytes.len())
            .step_by(13)
            .map(|i| {
                let mut flipped = bytes.clone();
                flipped[i] ^= 0xff;
                flipped
            })
            .collect();
        for (what, cases) in [("truncations", &truncations), ("byte flips", &flips)] {
            let (mut ok, mut err, mut panic) = (0, 0, 0);
            for case in cases {
                std::fs::write(&probe, case).unwrap();
                match catch_unwind(AssertUnwindSafe(|| read_all(&probe))) {
                    Ok(Ok(_)) => ok += 1,
                    Ok(Err(_)) => err += 1,
                    Err(_) => panic += 1,
                }
            }
            println!(
                "{name}: {} {what} (every 13th position): {ok} read without an error, {err} errors, {panic} panics",
                cases.len()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
