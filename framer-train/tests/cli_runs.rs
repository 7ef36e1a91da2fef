//! `framer train` on a run folder, as a user drives it: a NaN spike is skipped, logged and
//! survived; a different schedule never damages a run folder; a kill while a resumed run trims
//! its log loses no history; a damaged checkpoint is passed over by `train` and `sr`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TINY: &str = "[model]\nbackbone = \"dit\"\npreset = \"tiny\"\n[data]\ncrop_size = 16\n\
                    scale = 4\n[train]\nsteps = 8\nbatch_size = 1\n[checkpoint]\nevery = 2\n\
                    [logging]\nprogress = false\n";

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("framer-cli-runs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn schedule(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(format!("{name}.toml"));
        fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn framer(args: &[&Path], fault: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_framer"));
    cmd.args(args);
    match fault {
        Some(f) => cmd.env("FRAMER_FAULT", f),
        None => cmd.env_remove("FRAMER_FAULT"),
    };
    cmd.output().unwrap()
}

fn train(schedule: &Path, out: &Path, fault: Option<&str>) -> Output {
    framer(
        &[Path::new("train"), schedule, Path::new("--out"), out],
        fault,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file of a folder with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_nan_spike_is_skipped_logged_and_survived() {
    let dir = Dir::new("nan");
    let spike = "[[schedule.phase]]\nstart = 3\nend = 4\ntemperature = 1e-45\n";
    let schedule = dir.schedule("spike", &format!("{TINY}{spike}"));
    let out = dir.0.join("run");
    let o = train(&schedule, &out, None);
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("1 steps skipped"), "{stdout}");
    // stderr is a pipe here, not a terminal: the warning is there all the same
    assert!(
        stderr.contains("warning: step 3: non-finite loss") && stderr.contains("was skipped"),
        "{stderr}"
    );
    let log = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let line = log.lines().nth(3).unwrap();
    assert!(
        line.starts_with("{\"step\":3,\"loss\":null,") && line.contains("\"skipped\":true"),
        "{line}"
    );
    // resumable: run again (nothing left to do), then extended by four steps
    let o = train(&schedule, &out, None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let longer = dir.schedule(
        "spike",
        &format!("{}{spike}", TINY.replace("steps = 8", "steps = 12")),
    );
    let o = train(&longer, &out, None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("steps 8..12"),
        "{}",
        text(&o.stdout)
    );
    let log2 = fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(
        log2.starts_with(&log),
        "the first 8 records are kept as written"
    );
    assert_eq!(log2.lines().count(), 12);
}

#[test]
fn another_schedule_never_damages_a_run_folder() {
    let dir = Dir::new("other");
    let schedule = dir.schedule("run", TINY);
    let out = dir.0.join("run");
    let o = train(&schedule, &out, None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let before = snapshot(&out);
    for (change, key) in [
        (
            ("preset = \"tiny\"", "preset = \"small\""),
            "`model.preset`",
        ),
        (("steps = 8", "steps = 8\nseed = 4"), "`train.seed`"),
        (
            ("[logging]", "[optimizer]\nlr = 1e-3\n[logging]"),
            "`optimizer.lr`",
        ),
        (("scale = 4", "scale = 2"), "`data.scale`"),
        (("every = 2", "every = 2\nresume = false"), "resume = false"),
    ] {
        let other = dir.schedule("other", &TINY.replace(change.0, change.1));
        let o = train(&other, &out, None);
        let stderr = text(&o.stderr);
        assert!(!o.status.success(), "{change:?} was accepted");
        assert!(
            stderr.contains(&out.display().to_string())
                && stderr.contains(key)
                && stderr.contains("nothing was written"),
            "{change:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(snapshot(&out), before, "{change:?} changed the run folder");
    }
    // `sr --run` still reads the run
    let lr = dir.0.join("lr.png");
    image::RgbImage::from_pixel(5, 4, image::Rgb([90, 120, 200]))
        .save(&lr)
        .unwrap();
    let o = framer(
        &[
            Path::new("sr"),
            Path::new("--run"),
            &out,
            &lr,
            &dir.0.join("sr.png"),
            Path::new("--steps"),
            Path::new("2"),
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    // what may change to continue a run: more steps (constant lr), logging, checkpoint period
    let more = dir.schedule(
        "more",
        &TINY
            .replace("steps = 8", "steps = 10")
            .replace("every = 2", "every = 5"),
    );
    let o = train(&more, &out, None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("steps 8..10"));
    let stored = fs::read_to_string(out.join("schedule.resolved.toml")).unwrap();
    assert!(stored.contains("steps = 10"), "{stored}");
}

#[test]
fn a_kill_while_a_resumed_run_trims_its_log_loses_no_history() {
    let dir = Dir::new("trim");
    let schedule = dir.schedule("run", TINY);
    let out = dir.0.join("run");
    // killed after 8 steps: the log holds steps 0..=6, the last checkpoint is at step 6
    let o = train(&schedule, &out, Some("step:8"));
    assert_eq!(o.status.code(), Some(86), "{}", text(&o.stderr));
    let log = out.join("metrics.jsonl");
    let first = fs::read(&log).unwrap();
    assert_eq!(text(&first).lines().count(), 7);
    // killed again half-way through writing the trimmed log: the log is as it was
    let o = train(&schedule, &out, Some("metrics.rewrite:1"));
    assert_eq!(o.status.code(), Some(86), "{}", text(&o.stderr));
    assert_eq!(fs::read(&log).unwrap(), first);
    // killed half-way through a metrics line
    let o = train(&schedule, &out, Some("metrics.line:1"));
    assert_eq!(o.status.code(), Some(86), "{}", text(&o.stderr));
    // then resumed to the end: the first records as written, every step once
    let o = train(&schedule, &out, None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let last = fs::read(&log).unwrap();
    let kept = text(&first)
        .lines()
        .take(6)
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    assert!(text(&last).starts_with(&kept));
    let steps: Vec<u64> = text(&last)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (0..8).collect::<Vec<_>>());
}

#[test]
fn train_and_sr_pass_over_a_damaged_newest_checkpoint() {
    let dir = Dir::new("damaged");
    let schedule = dir.schedule("run", TINY);
    let out = dir.0.join("run");
    let o = train(&schedule, &out, None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let newest = out.join("checkpoints/step-00000008/model.mpk");
    let bytes = fs::read(&newest).unwrap();
    fs::write(&newest, &bytes[..bytes.len() / 2]).unwrap();
    let lr = dir.0.join("lr.png");
    image::RgbImage::from_pixel(5, 4, image::Rgb([90, 120, 200]))
        .save(&lr)
        .unwrap();
    let o = framer(
        &[
            Path::new("sr"),
            Path::new("--run"),
            &out,
            &lr,
            &dir.0.join("sr.png"),
            Path::new("--steps"),
            Path::new("2"),
        ],
        None,
    );
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("step-00000008: model.mpk has") && stderr.contains("truncated"),
        "{stderr}"
    );
    assert!(
        text(&o.stdout).contains("step-00000006"),
        "{}",
        text(&o.stdout)
    );
    // training resumes from step 6 and writes step 8 again
    let o = train(&schedule, &out, None);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("using the previous good checkpoint"),
        "{stderr}"
    );
    assert!(
        text(&o.stdout).contains("steps 6..8"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(fs::read(&newest).unwrap().len(), bytes.len());
    // both damaged: a clear error naming the files, not burn's record-format hint
    for step in [6, 8] {
        let f = out.join(format!("checkpoints/step-{step:08}/model.mpk"));
        let mut b = fs::read(&f).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 1;
        fs::write(&f, b).unwrap();
    }
    let o = train(&schedule, &out, None);
    let stderr = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("no intact checkpoint")
            && stderr.contains("step-00000006")
            && !stderr.contains("0.14"),
        "{stderr}"
    );
}

#[test]
fn sr_checks_its_arguments_and_never_writes_over_its_inputs() {
    let dir = Dir::new("sr");
    let schedule = dir.schedule("run", &TINY.replace("steps = 8", "steps = 2"));
    let run = dir.0.join("run");
    let o = train(&schedule, &run, None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lr_dir = dir.0.join("lr");
    fs::create_dir_all(&lr_dir).unwrap();
    let lr = lr_dir.join("a.png");
    image::RgbImage::from_fn(8, 8, |x, y| {
        image::Rgb([(x * 30) as u8, (y * 30) as u8, 90])
    })
    .save(&lr)
    .unwrap();
    let lr_bytes = fs::read(&lr).unwrap();
    let sr = |input: &Path, output: &Path, extra: &[&str]| {
        let mut args: Vec<&Path> = vec![Path::new("sr"), Path::new("--run"), &run, input, output];
        args.extend(extra.iter().map(Path::new));
        if !extra.contains(&"--steps") {
            args.extend([Path::new("--steps"), Path::new("2")]);
        }
        framer(&args, None)
    };
    let refused = |o: Output, says: &str| {
        let stderr = text(&o.stderr);
        assert!(!o.status.success(), "accepted; expected {says}");
        assert!(stderr.contains(says), "expected {says}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    let out = dir.0.join("out");
    for (extra, says) in [
        (
            &["--tile", "3"][..],
            "--tile 3: the model cannot take 3×3 tiles",
        ),
        (&["--tile", "30"], "--tile 30: the model cannot take"),
        (&["--tile", "100000"], "--tile 100000 is larger than needed"),
        (
            &["--overlap", "16"],
            "--overlap 16 must be smaller than the tile side (16)",
        ),
        (
            &["--strength", "-1"],
            "--strength -1: expected a number in (0, 1]",
        ),
        (&["--strength", "0"], "--strength 0:"),
        (&["--strength", "2"], "--strength 2:"),
        (&["--strength", "NaN"], "--strength NaN:"),
        (&["--steps", "0"], "--steps 0"),
    ] {
        refused(sr(&lr, &out, extra), says);
    }
    assert!(!out.exists(), "nothing was written");
    // never over an input
    refused(sr(&lr, &lr, &[]), "would be written over the input");
    refused(sr(&lr_dir, &lr_dir, &[]), "is the input folder");
    refused(sr(&lr, &lr_dir, &[]), "would be written over the input");
    assert_eq!(fs::read(&lr).unwrap(), lr_bytes);
    // an output named like an image is that image, in its format
    let jpg = dir.0.join("x.jpg");
    let o = sr(&lr, &jpg, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(jpg.is_file());
    // a folder with a bad image: the others are written, the failure and the outputs named
    fs::write(lr_dir.join("b.png"), b"not a png").unwrap();
    image::RgbImage::from_pixel(6, 6, image::Rgb([10, 200, 30]))
        .save(lr_dir.join("c.png"))
        .unwrap();
    let o = sr(&lr_dir, &out, &[]);
    let stderr = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("1 of 3 images failed")
            && stderr.contains("b.png")
            && stderr.contains(&out.join("a.png").display().to_string())
            && stderr.contains(&out.join("c.png").display().to_string()),
        "{stderr}"
    );
    assert!(out.join("a.png").is_file() && out.join("c.png").is_file());
}

#[test]
fn eval_names_the_images_too_small_for_niqe() {
    let dir = Dir::new("eval-small");
    let sr_dir = dir.0.join("sr");
    fs::create_dir_all(&sr_dir).unwrap();
    image::RgbImage::from_pixel(64, 64, image::Rgb([90, 120, 200]))
        .save(sr_dir.join("small.png"))
        .unwrap();
    let o = framer(&[Path::new("eval"), &sr_dir], None);
    let stderr = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("small.png (64x64)") && stderr.contains("--metrics psnr_y,ssim_y"),
        "{stderr}"
    );
}
