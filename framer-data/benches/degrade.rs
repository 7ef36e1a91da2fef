//! Throughput of the Real-ESRGAN degradation: pairs per second for 512×512 HR crops at ×4, taken
//! from the embedded training photos with the default configuration, on one thread.
//!
//! Run: `cargo bench -p framer-data --bench degrade` (optional arguments: number of pairs per
//! round, default 20, and number of rounds, default 5). Prints each round and the median.

use std::time::Instant;

use framer_data::filter::{filter2d, usm_sharpen};
use framer_data::jpeg::jpeg_roundtrip;
use framer_data::kernels::{circular_lowpass, gaussian};
use framer_data::noise::add_poisson_noise;
use framer_data::resize::{Interpolation, resize_by_factor};
use framer_data::{DegradationConfig, Degrader, Image, TrainPairs, TrainPairsOptions, item_rng};

/// Median time in milliseconds of `reps` calls of `f`.
fn time_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

/// Cost of the individual steps on a 512×512 crop (the stage 1 input size).
fn breakdown(hr: &Image) {
    let k21 = gaussian(21, 2.0, 1.0, 0.3);
    let sinc = circular_lowpass(21, 1.5);
    let mut rng = item_rng(0, 0);
    println!("step costs on 512x512 (median of 5):");
    println!(
        "  usm_sharpen            {:7.2} ms",
        time_ms(5, || drop(usm_sharpen(hr)))
    );
    println!(
        "  filter2d 21x21         {:7.2} ms",
        time_ms(5, || drop(filter2d(hr, &k21)))
    );
    println!(
        "  filter2d sinc 21x21    {:7.2} ms",
        time_ms(5, || drop(filter2d(hr, &sinc)))
    );
    let iso = gaussian(21, 2.0, 2.0, 0.0);
    println!(
        "  filter2d 21x21 iso     {:7.2} ms (separable)",
        time_ms(5, || drop(filter2d(hr, &iso)))
    );
    for mode in Interpolation::ALL {
        println!(
            "  resize x0.5 {:<10} {:7.2} ms",
            format!("{mode:?}"),
            time_ms(5, || drop(resize_by_factor(hr, 0.5, mode).unwrap()))
        );
    }
    println!(
        "  poisson noise          {:7.2} ms",
        time_ms(5, || add_poisson_noise(
            &mut hr.clone(),
            1.0,
            false,
            &mut rng
        ))
    );
    println!(
        "  jpeg round trip q50    {:7.2} ms",
        time_ms(5, || drop(jpeg_roundtrip(hr, 50.0).unwrap()))
    );
}

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

    breakdown(&data.crop(0, 0)?);

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

    // Smaller crops, for comparison.
    let small = TrainPairs::embedded(
        degrader.clone(),
        TrainPairsOptions {
            crop_size: 256,
            ..TrainPairsOptions::default()
        },
    )?;
    let t = Instant::now();
    for i in 0..per_round * 2 {
        std::hint::black_box(small.get(i, 7)?);
    }
    println!(
        "256x256 crops: {:.2} pairs/s (1 thread, {} pairs)",
        (per_round * 2) as f64 / t.elapsed().as_secs_f64(),
        per_round * 2
    );

    // Two worker threads sharing the dataset (`TrainPairs` is `Sync`), as a data loader would.
    let threads = 2;
    let mut rates2 = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let t = Instant::now();
        std::thread::scope(|scope| {
            for worker in 0..threads {
                let data = &data;
                let base = 10_000 + round * per_round;
                scope.spawn(move || {
                    for i in (worker..per_round).step_by(threads) {
                        std::hint::black_box(data.get(base + i, 7).expect("embedded pairs"));
                    }
                });
            }
        });
        rates2.push(per_round as f64 / t.elapsed().as_secs_f64());
    }
    rates2.sort_by(f64::total_cmp);
    println!(
        "median: {:.2} pairs/s with {threads} threads",
        rates2[rates2.len() / 2]
    );
    Ok(())
}
