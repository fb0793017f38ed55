//! Lock names up to NAME_MAX (255 bytes), whatever the length of the private
//! names beside them would be.

use crate::common::*;
use lockfile_host::PAUSE_VAR;
use std::process::{Command, Stdio};

/// Names up to NAME_MAX (255 bytes) work for every operation, whatever the
/// length of the private names beside them would be.
#[test]
fn every_operation_works_on_lock_names_up_to_255_bytes() {
    for len in [200usize, 222, 226, 240, 255] {
        let dir = sandbox();
        let flags = sandbox();
        let name = format!("{}.lock", "n".repeat(len - 5));
        let lock = dir.path().join(&name);
        let (a, b) = (Sleeper::new(), Sleeper::new());
        let out = lockfile(&["acquire", "--pid", &a.pid_str(), s(&lock)]);
        expect_code(&out, 0);
        assert_eq!(status_json(&lock, &[])["pid"], a.pid(), "{len}");
        expect_code(&lockfile(&["release", "--pid", &a.pid_str(), s(&lock)]), 0);
        // A crash while publishing leaves a private file beside the lock...
        let flag = flags.path().join("pause");
        let mut crashed = Command::new(lockfile_bin())
            .args(["acquire", "--pid", &a.pid_str(), s(&lock)])
            .env(PAUSE_VAR, format!("before-publish:{}", s(&flag)))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        wait_for_file(&flag);
        crashed.kill().expect("kill");
        let _ = crashed.wait();
        assert_eq!(names(dir.path()).len(), 1, "{len}: a temporary file");
        // ... and a takeover of a stale lock (a claim beside it) sweeps it.
        expect_code(
            &lockfile(&["write", s(&lock), &DEAD_PID.to_string(), "1700000000"]),
            0,
        );
        let out = lockfile(&[
            "acquire",
            "--replace-stale",
            "--pid",
            &b.pid_str(),
            s(&lock),
        ]);
        expect_code(&out, 0);
        assert_eq!(names(dir.path()), vec![name.clone()], "{len}: swept");
        expect_code(&lockfile(&["release", "--pid", &b.pid_str(), s(&lock)]), 0);
        assert!(names(dir.path()).is_empty(), "{len}");
    }
}
