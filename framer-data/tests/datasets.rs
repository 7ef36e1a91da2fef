//! Image loading (good and bad files), the training and evaluation datasets, embedded photos.

use std::path::{Path, PathBuf};

use framer_data::dataset::pairing_key;
use framer_data::{
    DataError, DegradationConfig, Degrader, Image, PairedFolders, SmallImages, TrainPairs,
    TrainPairsOptions, embedded,
};
use image::{ImageBuffer, Luma, Rgb, Rgba};

/// A fresh, empty scratch folder under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("framer-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_rgb(path: &Path, w: u32, h: u32) {
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    })
    .save(path)
    .unwrap();
}

fn degrader() -> Degrader {
    Degrader::new(DegradationConfig::default()).unwrap()
}

fn names_file(err: &DataError, file: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&file.display().to_string()),
        "error must name {}: {msg}",
        file.display()
    );
}

#[test]
fn loading_converts_every_colour_type_to_rgb() {
    let dir = scratch("colour");
    // Grayscale → replicated.
    let p = dir.join("gray.png");
    ImageBuffer::from_fn(5, 4, |x, _| Luma([(x * 60) as u8]))
        .save(&p)
        .unwrap();
    let img = Image::load(&p).unwrap();
    assert_eq!(img.shape(), [3, 4, 5]);
    assert_eq!(img.channel(0), img.channel(2));
    assert!((img.get(1, 2, 3) - 180.0 / 255.0).abs() < 1e-7);
    // 16-bit → scaled by 1/65535.
    let p = dir.join("deep.png");
    ImageBuffer::<Rgb<u16>, _>::from_fn(3, 2, |x, _| Rgb([65535, 32768, (x * 1000) as u16]))
        .save(&p)
        .unwrap();
    let img = Image::load(&p).unwrap();
    assert!((img.get(0, 0, 0) - 1.0).abs() < 1e-7);
    assert!((img.get(1, 1, 2) - 32768.0 / 65535.0).abs() < 1e-6);
    assert!((img.get(2, 0, 2) - 2000.0 / 65535.0).abs() < 1e-6);
    // 16-bit grayscale.
    let p = dir.join("deep_gray.png");
    ImageBuffer::<Luma<u16>, _>::from_fn(2, 2, |_, _| Luma([16384]))
        .save(&p)
        .unwrap();
    assert!((Image::load(&p).unwrap().get(2, 1, 1) - 16384.0 / 65535.0).abs() < 1e-6);
    // Alpha → dropped (colour kept even where fully transparent).
    let p = dir.join("alpha.png");
    ImageBuffer::from_fn(2, 2, |x, _| Rgba([10, 20, 30, (x * 255) as u8]))
        .save(&p)
        .unwrap();
    let img = Image::load(&p).unwrap();
    assert!((img.get(0, 0, 0) - 10.0 / 255.0).abs() < 1e-7);
    assert!((img.get(2, 1, 1) - 30.0 / 255.0).abs() < 1e-7);
    // JPEG and BMP load too; the format comes from the content, not the extension.
    let p = dir.join("photo.bmp");
    write_rgb(&p, 8, 6);
    assert_eq!(Image::load(&p).unwrap().shape(), [3, 6, 8]);
    let misnamed = dir.join("really_a_bmp.png");
    std::fs::copy(&p, &misnamed).unwrap();
    assert_eq!(Image::load(&misnamed).unwrap().shape(), [3, 6, 8]);
    // PNG round trip through save_png is exact at 8 bits.
    let src = Image::load(dir.join("gray.png")).unwrap();
    let out = dir.join("saved.png");
    src.save_png(&out).unwrap();
    assert_eq!(Image::load(&out).unwrap(), src);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_files_give_errors_naming_them() {
    let dir = scratch("bad");
    // Not an image at all.
    let text = dir.join("notes.png");
    std::fs::write(&text, "this is not a picture").unwrap();
    let e = Image::load(&text).unwrap_err();
    assert!(matches!(e, DataError::Decode { .. }), "{e:?}");
    names_file(&e, &text);
    // Truncated PNG and JPEG.
    for (name, fmt) in [
        ("cut.png", image::ImageFormat::Png),
        ("cut.jpg", image::ImageFormat::Jpeg),
    ] {
        let full = dir.join(format!("full_{name}"));
        ImageBuffer::from_fn(64, 64, |x, y| Rgb([(x * 3) as u8, (y * 3) as u8, 7]))
            .save_with_format(&full, fmt)
            .unwrap();
        let bytes = std::fs::read(&full).unwrap();
        let cut = dir.join(name);
        std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
        let e = Image::load(&cut).unwrap_err();
        assert!(matches!(e, DataError::Decode { .. }), "{e:?}");
        names_file(&e, &cut);
        // The complete file loads.
        assert_eq!(Image::load(&full).unwrap().shape(), [3, 64, 64]);
    }
    // Empty file, missing file.
    let empty = dir.join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    names_file(&Image::load(&empty).unwrap_err(), &empty);
    let missing = dir.join("missing.png");
    let e = Image::load(&missing).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    names_file(&e, &missing);
    // In-memory decoding names the buffer.
    let e = Image::decode(b"garbage", "buffer.png").unwrap_err();
    assert!(e.to_string().contains("buffer.png"));
    // A folder with a bad file fails when the dataset is built, naming the file.
    let folder = scratch("bad_folder");
    write_rgb(&folder.join("a.png"), 80, 80);
    std::fs::write(folder.join("b.png"), "nope").unwrap();
    let opts = TrainPairsOptions {
        crop_size: 64,
        ..TrainPairsOptions::default()
    };
    let e = TrainPairs::from_folder(&folder, degrader(), opts).unwrap_err();
    names_file(&e, &folder.join("b.png"));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn small_photos_are_an_error_or_skipped() {
    let dir = scratch("small");
    write_rgb(&dir.join("big.png"), 100, 90);
    write_rgb(&dir.join("small.png"), 100, 40);
    std::fs::write(dir.join("README.txt"), "ignored: not an image extension").unwrap();
    let opts = TrainPairsOptions {
        crop_size: 64,
        ..TrainPairsOptions::default()
    };
    let e = TrainPairs::from_folder(&dir, degrader(), opts.clone()).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::TooSmall {
                width: 100,
                height: 40,
                crop: 64,
                ..
            }
        ),
        "{e:?}"
    );
    names_file(&e, &dir.join("small.png"));
    let skip = TrainPairsOptions {
        small_images: SmallImages::Skip,
        ..opts.clone()
    };
    let data = TrainPairs::from_folder(&dir, degrader(), skip.clone()).unwrap();
    assert_eq!(data.len(), 1);
    assert!(data.names()[0].ends_with("big.png"));
    // Only small photos: still an error under Skip.
    std::fs::remove_file(dir.join("big.png")).unwrap();
    assert!(matches!(
        TrainPairs::from_folder(&dir, degrader(), skip),
        Err(DataError::TooSmall { .. })
    ));
    // Empty folder and missing folder.
    let empty = scratch("empty");
    let e = TrainPairs::from_folder(&empty, degrader(), opts.clone()).unwrap_err();
    assert!(matches!(e, DataError::EmptyFolder { .. }));
    names_file(&e, &empty);
    let e = TrainPairs::from_folder(empty.join("nope"), degrader(), opts.clone()).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    // A crop that is not a multiple of the scale is refused.
    let bad = TrainPairsOptions {
        crop_size: 66,
        ..opts
    };
    assert!(TrainPairs::embedded(degrader(), bad).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn large_photos_are_halved_before_cropping() {
    let dir = scratch("large");
    write_rgb(&dir.join("large.png"), 300, 260);
    let opts = TrainPairsOptions {
        crop_size: 128,
        halve_min_side: Some(256),
        ..TrainPairsOptions::default()
    };
    // 300×260 → 150×130 ≥ 128: accepted; with crop 136 the halved photo is too small.
    assert!(TrainPairs::from_folder(&dir, degrader(), opts.clone()).is_ok());
    let e = TrainPairs::from_folder(
        &dir,
        degrader(),
        TrainPairsOptions {
            crop_size: 136,
            ..opts.clone()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DataError::TooSmall {
                width: 150,
                height: 130,
                ..
            }
        ),
        "{e:?}"
    );
    let keep = TrainPairsOptions {
        crop_size: 136,
        halve_min_side: None,
        ..opts
    };
    assert!(TrainPairs::from_folder(&dir, degrader(), keep).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_pairs_are_deterministic_per_seed_and_index() {
    let opts = TrainPairsOptions {
        crop_size: 64,
        ..TrainPairsOptions::default()
    };
    let data = TrainPairs::embedded(degrader(), opts).unwrap();
    assert_eq!(data.len(), 8);
    let a = data.get(5, 11).unwrap();
    assert_eq!(a, data.get(5, 11).unwrap());
    assert_ne!(a.lr, data.get(5, 12).unwrap().lr);
    assert_ne!(a.lr, data.get(6, 11).unwrap().lr);
    // Indices wrap around the photos: same photo, other crop.
    assert_ne!(data.crop(5, 11).unwrap(), data.crop(5 + 8, 11).unwrap());
    assert_eq!(a.hr.shape(), [3, 64, 64]);
    assert_eq!(a.lr.shape(), [3, 16, 16]);
    // The HR of the pair is the USM-sharpened crop.
    assert_eq!(
        a.hr,
        framer_data::filter::usm_sharpen(&data.crop(5, 11).unwrap())
    );
    // Crops cover different places of a photo across seeds.
    let crops: Vec<Image> = (0..6).map(|s| data.crop(0, s).unwrap()).collect();
    for i in 0..crops.len() {
        for j in i + 1..crops.len() {
            assert_ne!(crops[i], crops[j]);
        }
    }
}

#[test]
fn crops_without_augmentation_are_windows_of_the_photo() {
    let photo = embedded::train().unwrap().remove(1); // astronaut, 512×512
    let opts = TrainPairsOptions {
        crop_size: 32,
        hflip: false,
        rot: false,
        ..TrainPairsOptions::default()
    };
    let data = TrainPairs::from_images(vec![photo.clone()], degrader(), opts).unwrap();
    let crop = data.crop(0, 3).unwrap();
    // Find the window by brute force on the first row of the first channel, then compare all.
    let img = &photo.image;
    let found = (0..=img.height() - 32)
        .any(|top| (0..=img.width() - 32).any(|left| img.crop(left, top, 32, 32).unwrap() == crop));
    assert!(found, "the crop must be a window of the photo");
}

#[test]
fn paired_folders_match_by_stem() {
    let root = scratch("paired");
    let (hr, lr) = (root.join("HR"), root.join("LR"));
    std::fs::create_dir_all(&hr).unwrap();
    std::fs::create_dir_all(&lr).unwrap();
    // RealSR-style names, a DRealSR-style pair and a plain pair.
    write_rgb(&hr.join("Canon_001_HR.png"), 64, 48);
    write_rgb(&lr.join("Canon_001_LR4.png"), 16, 12);
    write_rgb(&hr.join("sony_7_x1.png"), 32, 32);
    write_rgb(&lr.join("sony_7_x4.png"), 8, 8);
    write_rgb(&hr.join("plain.png"), 40, 40);
    write_rgb(&lr.join("plain.bmp"), 10, 10);
    let pairs = PairedFolders::open(&hr, &lr).unwrap();
    assert_eq!(pairs.names(), vec!["canon_001", "plain", "sony_7"]);
    let p = pairs.get(0).unwrap();
    assert_eq!(
        (p.hr.shape(), p.lr.shape(), p.scale()),
        ([3, 48, 64], [3, 12, 16], Some(4))
    );
    assert!(matches!(
        pairs.get(3),
        Err(DataError::IndexOutOfRange { index: 3, len: 3 })
    ));
    // A missing partner in either direction is an error naming the orphan and the folder.
    write_rgb(&hr.join("orphan.png"), 8, 8);
    let e = PairedFolders::open(&hr, &lr).unwrap_err();
    assert!(matches!(e, DataError::MissingPartner { .. }));
    names_file(&e, &hr.join("orphan.png"));
    names_file(&e, &lr);
    std::fs::remove_file(hr.join("orphan.png")).unwrap();
    write_rgb(&lr.join("lonely_LR4.png"), 8, 8);
    let e = PairedFolders::open(&hr, &lr).unwrap_err();
    names_file(&e, &lr.join("lonely_LR4.png"));
    names_file(&e, &hr);
    std::fs::remove_file(lr.join("lonely_LR4.png")).unwrap();
    // Two files with one key.
    write_rgb(&hr.join("plain.jpg"), 40, 40);
    assert!(matches!(
        PairedFolders::open(&hr, &lr),
        Err(DataError::DuplicateStem { .. })
    ));
    assert_eq!(pairing_key(Path::new("a_b_LR")), "a_b");
    assert_eq!(pairing_key(Path::new("x_2.png")), "x_2");
    assert_eq!(pairing_key(Path::new("_HR.png")), "_hr");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn embedded_photos_are_real_rgb_photos_split_in_three() {
    let train = embedded::train().unwrap();
    let held = embedded::held_out().unwrap();
    assert_eq!((train.len(), held.len()), (8, 3));
    let mut names: Vec<&str> = train.iter().chain(&held).map(|p| p.name.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 11);
    for p in train.iter().chain(&held) {
        let img = &p.image;
        assert!(
            img.width().min(img.height()) >= 512,
            "{} is {}x{}",
            p.name,
            img.width(),
            img.height()
        );
        assert!(img.width().max(img.height()) <= 1024);
        // Colour photos: the channels differ, and there is texture (not flat artwork).
        assert_ne!(img.channel(0), img.channel(2), "{}", p.name);
        let n = img.data().len() as f64;
        let m = img.data().iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let sd = (img
            .data()
            .iter()
            .map(|&v| (f64::from(v) - m).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        assert!(sd > 0.05, "{}: sd {sd}", p.name);
    }
    // No held-out photo is also a training photo.
    for h in &held {
        assert!(train.iter().all(|t| t.image != h.image));
    }
    // The validation photos are a third, disjoint set of colour photos, large enough for the main
    // job's 256² validation crops.
    let validation = embedded::validation().unwrap();
    assert_eq!(validation.len(), 3);
    for v in &validation {
        let img = &v.image;
        assert!(img.width().min(img.height()) >= 256, "{} is {}x{}", v.name, img.width(), img.height());
        assert_ne!(img.channel(0), img.channel(2), "{}", v.name);
        assert!(train.iter().chain(&held).all(|t| t.image != v.image && t.name != v.name), "{}", v.name);
    }
    // 512² crops at ×4 work on every embedded training photo.
    let data = TrainPairs::embedded(degrader(), TrainPairsOptions::default()).unwrap();
    assert_eq!(data.crop(7, 0).unwrap().shape(), [3, 512, 512]);
}

/// Checks a folder made by `scripts/gather-photos.sh`: every sub-folder loads and yields pairs.
/// Run with `FRAMER_GATHERED_PHOTOS=DEST cargo test -p framer-data --release -- --ignored`.
#[test]
#[ignore = "needs the photos of scripts/gather-photos.sh in $FRAMER_GATHERED_PHOTOS"]
fn gathered_photos_load() {
    let Some(root) = std::env::var_os("FRAMER_GATHERED_PHOTOS") else {
        eprintln!("FRAMER_GATHERED_PHOTOS is not set; nothing to check");
        return;
    };
    let opts = TrainPairsOptions {
        small_images: SmallImages::Skip,
        ..TrainPairsOptions::default()
    };
    let mut total = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        match TrainPairs::from_folder(&dir, degrader(), opts.clone()) {
            Ok(data) => {
                let p = data.get(0, 0).unwrap();
                assert_eq!(p.lr.shape(), [3, 128, 128]);
                println!(
                    "{}: {} photos usable for 512² crops",
                    dir.display(),
                    data.len()
                );
                total += data.len();
            }
            Err(e) => println!("{}: {e}", dir.display()),
        }
    }
    assert!(total > 0);
}

/// Datasets can be shared across worker threads.
#[test]
fn datasets_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<TrainPairs>();
    check::<PairedFolders>();
    check::<Degrader>();
    check::<Image>();
}
