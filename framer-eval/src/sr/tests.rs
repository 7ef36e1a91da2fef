use super::*;
use burn::backend::Flex;
use std::convert::Infallible;

type B = Flex;

fn lr(w: usize, h: usize) -> Image {
    Image::from_fn(w, h, |c, y, x| {
        0.2 + 0.6 * (((x * 5 + y * 3 + c) % 9) as f32 / 9.0)
    })
    .unwrap()
}

#[test]
fn identity_model_gives_the_colour_fixed_bicubic_upsampling() {
    let img = lr(13, 9);
    let up = upsample_bicubic(&img, 2).unwrap();
    for fix in [
        ColorFix::None,
        ColorFix::AdaptiveInstanceNormalization,
        ColorFix::Wavelet,
    ] {
        let options = SrOptions::new(2, 16).with_overlap(6).with_color_fix(fix);
        let mut calls = 0;
        let sr = super_resolve::<B, _, _>(&img, &options, &Default::default(), |t, r| {
            calls += 1;
            assert_eq!(t.dims(), [1, 3, 16, 16]);
            assert_eq!(r.count, 4); // 26×18 in 16-px tiles: 2 × 2
            Ok::<_, Infallible>(t)
        })
        .unwrap();
        assert_eq!(calls, 4);
        let mut expected = up.clone();
        expected.clamp01();
        // identity model: tiling returns the upsampled image, and a colour fix of an image
        // against itself is the identity (to rounding)
        let err = sr
            .data()
            .iter()
            .zip(expected.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-5, "{fix:?}: {err}");
    }
}

#[test]
fn colour_fix_moves_a_colour_shifted_model_back() {
    let img = lr(16, 16);
    let options = SrOptions::new(2, 16);
    // a "model" that shifts every colour by +0.2: AdaIN restores the mean
    let sr = super_resolve::<B, _, _>(&img, &options, &Default::default(), |t, _| {
        Ok::<_, Infallible>(t.add_scalar(0.2))
    })
    .unwrap();
    let up = upsample_bicubic(&img, 2).unwrap();
    for c in 0..3 {
        let m = |p: &[f32]| p.iter().sum::<f32>() / p.len() as f32;
        assert!((m(sr.channel(c)) - m(up.channel(c))).abs() < 2e-3);
    }
}

#[test]
fn jobs_for_files_and_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lr");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    lr(8, 8).save_png(dir.join("b.png")).unwrap();
    lr(8, 8).save_png(dir.join("a.png")).unwrap();
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    let out = tmp.path().join("out");
    let jobs = plan_jobs(&dir, &out).unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        (jobs[0].output.clone(), jobs[1].count),
        (out.join("a.png"), 2)
    );
    let single = plan_jobs(&dir.join("a.png"), &tmp.path().join("x.png")).unwrap();
    assert_eq!(single[0].output, tmp.path().join("x.png"));
    let into_dir = plan_jobs(&dir.join("a.png"), &out).unwrap();
    assert_eq!(into_dir[0].output, out.join("a.png"));

    let mut done = Vec::new();
    let report = super_resolve_jobs::<B, _, _>(
        &jobs,
        &SrOptions::new(2, 8).with_overlap(2),
        &Default::default(),
        |_, t, _| Ok::<_, Infallible>(t),
        |j| done.push(j.index),
    )
    .unwrap();
    assert_eq!(done, vec![0, 1]);
    assert!(report.failed.is_empty());
    let back = Image::load(&report.written[1]).unwrap();
    assert_eq!((back.width(), back.height()), (16, 16));
}

#[test]
fn bad_paths_and_options_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.png");
    let e = plan_jobs(&missing, tmp.path()).unwrap_err();
    assert!(
        matches!(e, EvalError::Read { .. }) && e.to_string().contains("missing.png"),
        "{e}"
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(
        plan_jobs(&empty, tmp.path())
            .unwrap_err()
            .to_string()
            .contains("no image files")
    );
    let txt = tmp.path().join("a.txt");
    std::fs::write(&txt, "x").unwrap();
    assert!(
        plan_jobs(&txt, tmp.path())
            .unwrap_err()
            .to_string()
            .contains("not an image")
    );
    let dup = tmp.path().join("dup");
    std::fs::create_dir_all(&dup).unwrap();
    lr(4, 4).save_png(dup.join("a.png")).unwrap();
    std::fs::copy(dup.join("a.png"), dup.join("a.bmp")).unwrap();
    assert!(
        plan_jobs(&dup, tmp.path())
            .unwrap_err()
            .to_string()
            .contains("both be written")
    );
    // a corrupt image names its path
    std::fs::write(dup.join("a.bmp"), b"not an image").unwrap();
    let jobs = vec![SrJob {
        index: 0,
        count: 1,
        input: dup.join("a.bmp"),
        output: tmp.path().join("o.png"),
    }];
    let report = super_resolve_jobs::<B, _, _>(
        &jobs,
        &SrOptions::new(2, 8),
        &Default::default(),
        |_, t, _| Ok::<_, Infallible>(t),
        |_| {},
    )
    .unwrap();
    assert!(report.written.is_empty());
    let e = &report.failed[0].1;
    assert!(e.to_string().contains("a.bmp"), "{e}");
    assert!(SrOptions::new(0, 8).validate().is_err());
    assert!(SrOptions::new(4, 8).with_overlap(8).validate().is_err());
}

/// Each tile is upsampled from the LR pixels around it alone, with the values of the whole
/// upsampled image (reflected where the image is smaller than a tile).
#[test]
fn tiles_are_upsampled_from_their_own_lr_pixels() {
    for (w, h, scale, tile, overlap) in
        [(37, 23, 3, 16, 5), (9, 5, 4, 48, 8), (20, 12, 2, 8, 3)]
    {
        let img = lr(w, h);
        let up = upsample_bicubic(&img, scale).unwrap();
        let (uw, uh) = (up.width(), up.height());
        let options = SrOptions::new(scale, tile)
            .with_overlap(overlap)
            .with_color_fix(ColorFix::None);
        super_resolve::<B, _, _>(&img, &options, &Default::default(), |t, r| {
            let v: Vec<f32> = t.clone().into_data().to_vec().unwrap();
            for c in 0..3 {
                for y in 0..tile {
                    for x in 0..tile {
                        let sy = crate::tiling::reflect_index((r.top + y) as isize, uh);
                        let sx = crate::tiling::reflect_index((r.left + x) as isize, uw);
                        let want = up.get(c, sy, sx);
                        let got = v[(c * tile + y) * tile + x];
                        assert!((got - want).abs() < 1e-6, "{w}x{h}: {got} vs {want}");
                    }
                }
            }
            Ok::<_, Infallible>(t)
        })
        .unwrap();
    }
}

#[test]
fn outputs_never_overwrite_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lr");
    std::fs::create_dir_all(&dir).unwrap();
    lr(8, 8).save_png(dir.join("a.png")).unwrap();
    lr(8, 8).save_png(dir.join("b.jpg")).unwrap();
    let a = dir.join("a.png");
    let refused = |input: &Path, output: &Path, says: &str| {
        let e = plan_jobs(input, output).unwrap_err().to_string();
        assert!(
            e.contains(says),
            "{} → {}: {e}",
            input.display(),
            output.display()
        );
    };
    refused(&a, &a, "would be written over the input");
    // the same file by another path
    refused(
        &a,
        &dir.join("../lr/./a.png"),
        "would be written over the input",
    );
    // a file into its own folder: lr/a.png again
    refused(&a, &dir, "would be written over the input");
    refused(&dir, &dir, "is the input folder");
    refused(&dir, &tmp.path().join("lr/"), "is the input folder");
    refused(&dir, &tmp.path().join("out.png"), "names an image file");
    // a JPEG input into its own folder would not overwrite it, a PNG one would
    assert_eq!(
        plan_jobs(&dir.join("b.jpg"), &dir).unwrap()[0].output,
        dir.join("b.png")
    );
    // an output with an image extension is a file, in that format
    let jpg = tmp.path().join("x.jpg");
    let jobs = plan_jobs(&a, &jpg).unwrap();
    assert_eq!(jobs[0].output, jpg);
    let report = super_resolve_jobs::<B, _, _>(
        &jobs,
        &SrOptions::new(2, 8).with_overlap(2),
        &Default::default(),
        |_, t, _| Ok::<_, Infallible>(t),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.written, [jpg.clone()]);
    assert!(jpg.is_file());
    assert_eq!(
        image::ImageReader::open(&jpg)
            .unwrap()
            .with_guessed_format()
            .unwrap()
            .format(),
        Some(image::ImageFormat::Jpeg)
    );
}

#[test]
fn a_bad_image_in_a_folder_does_not_stop_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lr");
    std::fs::create_dir_all(&dir).unwrap();
    lr(6, 6).save_png(dir.join("a.png")).unwrap();
    std::fs::write(dir.join("b.png"), b"not a png").unwrap();
    lr(6, 6).save_png(dir.join("c.png")).unwrap();
    let out = tmp.path().join("out");
    let jobs = plan_jobs(&dir, &out).unwrap();
    let report = super_resolve_jobs::<B, _, _>(
        &jobs,
        &SrOptions::new(2, 8).with_overlap(2),
        &Default::default(),
        |_, t, _| Ok::<_, Infallible>(t),
        |_| {},
    )
    .unwrap();
    assert_eq!(report.written, [out.join("a.png"), out.join("c.png")]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, dir.join("b.png"));
    assert!(out.join("c.png").is_file() && !out.join("b.png").exists());
}

#[test]
fn tile_seeds_differ_and_are_stable() {
    assert_eq!(tile_seed(7, 1, 2), tile_seed(7, 1, 2));
    let seeds: std::collections::BTreeSet<u64> = (0..4)
        .flat_map(|i| (0..4).map(move |t| tile_seed(7, i, t)))
        .collect();
    assert_eq!(seeds.len(), 16);
    assert_ne!(tile_seed(7, 0, 0), tile_seed(8, 0, 0));
}
