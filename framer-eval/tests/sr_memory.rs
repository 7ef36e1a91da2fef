//! `super_resolve` keeps its memory to the tile until the first tile is done: a 2500×2500 LR
//! image at ×4 (a 10000×10000 upsampled image, 1.2 GB as f32) must not be upsampled whole
//! before the model sees its first tile. Alone in its file, so that the process's peak memory is
//! this test's.

use burn::backend::Flex;
use framer_data::Image;
use framer_eval::sr::{SrOptions, super_resolve};

/// The process's peak resident memory in bytes (`VmHWM`), where Linux reports it.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn memory_before_the_first_tile_is_bounded_by_the_tile() {
    let lr = Image::from_fn(2500, 2500, |c, y, x| {
        ((x * 7 + y * 3 + c) % 251) as f32 / 250.0
    })
    .unwrap();
    let Some(before) = peak_rss() else {
        return; // no /proc: nothing to measure
    };
    let mut at_first_tile = None;
    let result = super_resolve::<Flex, _, _>(
        &lr,
        &SrOptions::new(4, 64),
        &Default::default(),
        |_tile, _| {
            at_first_tile = peak_rss();
            // stop here: the rest (the blended output) is allowed to be as large as the image
            Err::<burn::tensor::Tensor<Flex, 4>, _>(std::io::Error::other("stop"))
        },
    );
    assert!(result.is_err());
    let grown = at_first_tile.unwrap().saturating_sub(before);
    assert!(
        grown < 200 << 20,
        "memory grew by {} MB before the first tile",
        grown >> 20
    );
}
