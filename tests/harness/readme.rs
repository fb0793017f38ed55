//! The README cannot drift from the tool: its first two commands are the
//! ones this project runs, and every shell block marked `<!-- runnable -->`
//! runs, as written, against the binary just built.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;

/// The marker a runnable block's fence follows, on the line before it.
const MARKER: &str = "<!-- runnable -->";

/// The runnable shell blocks, with the line each starts on.
fn runnable_blocks(readme: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == MARKER {
            let fence = lines.get(i + 1).map(|l| l.trim()).unwrap_or_default();
            assert!(
                fence == "```sh" || fence == "```shell",
                "README.md:{}: `{MARKER}` must be followed by a ```sh fence, not `{fence}`",
                i + 1
            );
            let start = i + 2;
            let end = (start..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .unwrap_or_else(|| panic!("README.md:{}: the block never closes", i + 2));
            blocks.push((start + 1, lines[start..end].join("\n")));
            i = end;
        }
        i += 1;
    }
    blocks
}

#[test]
fn the_first_commands_are_the_ones_this_project_runs() {
    let readme = fs::read_to_string("README.md").expect("README.md");
    let first = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a first shell block");
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(
        lines,
        [
            "rustup target add wasm32-wasip2 && cargo run --bin lockfile -- run /tmp/demo.lock -- sh -c 'cat /tmp/demo.lock'",
            "scripts/test",
        ],
        "the README's first block: the main job, then every test"
    );
    let ci = fs::read_to_string(".ci/run").expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "scripts/test"),
        ".ci/run runs the README's test command"
    );
    // The main job, with the binary this test run built.
    let out = Command::new(lockfile_bin())
        .args([
            "run",
            "/tmp/demo.lock",
            "--",
            "sh",
            "-c",
            "cat /tmp/demo.lock",
        ])
        .output()
        .expect("lockfile runs");
    expect_code(&out, 0);
    // labm8's first line: `PID TIMESTAMP`.
    let text = stdout(&out);
    let mut first = text.lines().next().unwrap_or_default().split(' ');
    assert!(
        first.next().is_some_and(|p| p.parse::<u32>().is_ok())
            && first.next().is_some_and(|t| t.parse::<f64>().is_ok()),
        "the demo prints the lock it holds: {text}"
    );
}

#[test]
fn every_runnable_block_runs() {
    let readme = fs::read_to_string("README.md").expect("README.md");
    let blocks = runnable_blocks(&readme);
    assert!(
        blocks.len() >= 5,
        "README.md marks only {} blocks `{MARKER}`: the guide's shell examples must be tested",
        blocks.len()
    );
    let bin_dir = Path::new(lockfile_bin())
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (line, block) in blocks {
        let dir = sandbox();
        let out = Command::new("sh")
            .args(["-e", "-c", &block])
            .current_dir(dir.path())
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "README.md:{line}: the block failed ({:?}):\n{block}\n--- stdout:\n{}--- stderr:\n{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
    }
}
