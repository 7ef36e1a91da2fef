//! Throughput of the Real-ESRGAN degradation: pairs per second for 512×512 HR crops at ×4, taken
//! from the embedded training photos with the default configuration, on one thread.
//!
//! Run: `cargo bench -p framer-data --bench degrade` (optional arguments: number of pairs per
//! round, default 20, and number of rounds, default 5). Prints each round and the median.

use std::time::Instant;

use framer_data::{DegradationConfig, Degrader, TrainPairs, TrainPairsOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let per_round: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let rounds: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(5);

    let degrader = Degrader::new(DegradationConfig::default())?;
    let options = TrainPairsOptions {
        crop_size: 512,
        ..TrainPairsOptions::default()
    };
    let data = TrainPairs::embedded(degrader.clone(), options)?;

    // Crop + augmentation cost alone, for reference.
    let t = Instant::now();
    for i in 0..per_round {
        std::hint::black_box(data.crop(i, 1)?);
    }
    let crop_s = t.elapsed().as_secs_f64() / per_round as f64;

    let mut rates = Vec::with_capacity(rounds);
    let mut index = 0;
    for round in 0..rounds {
        let t = Instant::now();
        for _ in 0..per_round {
            let pair = data.get(index, 7)?;
            assert_eq!(pair.lr.shape(), [3, 128, 128]);
            std::hint::black_box(pair);
            index += 1;
        }
        let rate = per_round as f64 / t.elapsed().as_secs_f64();
        println!(
            "round {round}: {rate:.2} pairs/s ({per_round} pairs of 512x512 HR -> 128x128 LR)"
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!("crop + flips alone: {:.2} ms per crop", crop_s * 1e3);
    println!(
        "median: {median:.2} pairs/s ({:.1} ms per pair, 1 thread)",
        1e3 / median
    );
    Ok(())
}
