//! The `framer` command line: `check` prints the resolved schedule or a located error.

use std::process::Command;

fn framer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_framer"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn check_prints_the_resolved_schedule() {
    let (ok, stdout, stderr) = framer(&["check", "../examples/warmup_ramp.toml"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("# ../examples/warmup_ramp.toml: valid"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[framer]") && stdout.contains("lambda = 0.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("500..1000: lambda 0 → 0.1, alignment_modulation false"),
        "{stdout}"
    );
    // the scheduled-values table: λ halfway through the ramp is not printed, but the ramp's ends are
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start_matches('#').split_whitespace().next() == Some("999")),
        "{stdout}"
    );
}

#[test]
fn check_reports_a_located_error_and_fails() {
    let (ok, stdout, stderr) = framer(&["check", "tests/bad_schedules/unknown_key_framer.toml"]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(
        stderr.starts_with("error: unknown key `lamda` in [framer]; did you mean `lambda`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--> tests/bad_schedules/unknown_key_framer.toml:10:1"),
        "{stderr}"
    );
}

#[test]
fn train_runs_a_schedule_and_resumes_when_run_again() {
    let dir = std::env::temp_dir().join(format!("framer-cli-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let schedule = dir.join("tiny.toml");
    std::fs::write(
        &schedule,
        "[model]\nbackbone = \"unet\"\npreset = \"tiny\"\n[data]\ncrop_size = 32\n\
         [train]\nsteps = 2\nbatch_size = 1\n[checkpoint]\nevery = 1\n[logging]\nprogress = false\n",
    )
    .unwrap();
    let out = dir.join("run");
    let args = [
        "train",
        schedule.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (ok, stdout, stderr) = framer(&args);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("experiment tiny: steps 0..2"), "{stdout}");
    assert!(out.join("metrics.jsonl").is_file() && out.join("loss.png").is_file());
    assert!(out.join("checkpoints/step-00000002/model.mpk").is_file());
    // run again: everything is done, it resumes at step 2 and stops
    let (ok, stdout, stderr) = framer(&args);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("steps 2..2"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_reports_a_misspelt_student_glob_with_a_suggestion() {
    let (ok, stdout, stderr) = framer(&["check", "tests/bad_schedules/students_glob_misspelt.toml"]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.starts_with(
            "error: `students` entry \"mid_blok\" matches no student tap of the model; did you mean \"mid_block\"?"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("--> tests/bad_schedules/students_glob_misspelt.toml:11:30"),
        "{stderr}"
    );
    assert!(stderr.contains("the student taps are: down_blocks.0,"), "{stderr}");
}

#[test]
fn check_lists_the_model_taps_and_the_selected_students() {
    let dir = std::env::temp_dir().join(format!("framer-cli-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let schedule = dir.join("globs.toml");
    std::fs::write(
        &schedule,
        "[model]\nbackbone = \"unet\"\n[framer]\nstudents = [\"down_blocks.*\", \"mid_block\"]\n\
         [train]\nsteps = 2\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = framer(&["check", schedule.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("# student taps of the model: down_blocks.0, down_blocks.1, down_blocks.2, mid_block, up_blocks.0, up_blocks.1, up_blocks.2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# FRAMER students (4): down_blocks.0, down_blocks.1, down_blocks.2, mid_block"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `metrics.jsonl` without the wall-clock `seconds` of each step (the only field that measures
/// the machine rather than the run).
fn metrics_without_time(run: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            record.as_object_mut().unwrap().remove("seconds");
            record
        })
        .collect()
}

#[test]
fn the_same_schedule_trains_the_same_run_twice() {
    let dir = std::env::temp_dir().join(format!("framer-cli-twice-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let schedule = dir.join("twice.toml");
    std::fs::write(
        &schedule,
        "[model]\nbackbone = \"dit\"\npreset = \"tiny\"\n[data]\ncrop_size = 16\n\
         [framer]\nlambda = 0.1\n[train]\nsteps = 4\nbatch_size = 2\nseed = 9\n\
         [checkpoint]\nevery = 4\n[logging]\nprogress = false\n",
    )
    .unwrap();
    let runs: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            let out = dir.join(name);
            let (ok, _, stderr) = framer(&["train", schedule.to_str().unwrap(), "--out", out.to_str().unwrap()]);
            assert!(ok, "{stderr}");
            out
        })
        .collect();
    let (a, b) = (metrics_without_time(&runs[0]), metrics_without_time(&runs[1]));
    assert_eq!(a.len(), 4);
    // losses and gradient norms from step 0 on: the initial weights are seeded too
    assert_eq!(a, b, "two runs of one schedule log the same values");
    std::fs::remove_dir_all(&dir).unwrap();
}
