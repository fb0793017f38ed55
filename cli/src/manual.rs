//! The man page, made from the same clap definitions as `--help`, and
//! printing what `man` and `completions` make.

use std::io::Write;

use crate::OTHER;

/// Writes `bytes` to stdout: exit 0, or 3 with the reason (a closed pipe
/// is not a failure: the reader has what it wanted).
pub(crate) fn print_or_fail(bytes: &[u8]) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("lockfile: cannot print: {e}");
            OTHER
        }
    }
}

/// The man page of `command`: the command itself, then each subcommand
/// with its synopsis, description and options, in one page (`lockfile.1`).
pub fn man_page(command: &clap::Command) -> Vec<u8> {
    // The subcommands' arguments are deferred (see `Cmd`): build them.
    let mut command = command.clone();
    command.build();
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    // Writing to a Vec cannot fail.
    let _ = man.render_title(&mut page);
    let _ = man.render_name_section(&mut page);
    let _ = man.render_synopsis_section(&mut page);
    let _ = man.render_description_section(&mut page);
    let _ = man.render_options_section(&mut page);
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("lockfile {}", sub.get_name());
        let sub = sub.clone().bin_name(name.clone());
        let mut part = Vec::new();
        let man = clap_mangen::Man::new(sub);
        let _ = man.render_synopsis_section(&mut part);
        let _ = man.render_description_section(&mut part);
        let _ = man.render_options_section(&mut part);
        // One section per subcommand; its parts become subsections.
        let part = String::from_utf8_lossy(&part).replace(".SH ", ".SS ");
        page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
        page.extend_from_slice(part.as_bytes());
    }
    page.extend_from_slice(MAN_TAIL.as_bytes());
    let _ = man.render_version_section(&mut page);
    page
}

/// The man page's closing sections: `--help` shows the same facts as
/// preformatted text (`AFTER_HELP`), which roff would reflow badly.
const MAN_TAIL: &str = r#".SH "EXIT STATUS"
.TP
0
Success.
.TP
1
The lock is held by another owner (acquire or release refused,
\fB\-\-wait\fR timed out), or it changed hands too often while we looked;
with \fBrun \-E\fR \fIN\fR, \fIN\fR.
.TP
2
Usage error.
.TP
3
Any other error (malformed lock file, unreachable path, I/O error).
.PP
\fBrun\fR exits with COMMAND's status (128+\fIN\fR if signal \fIN\fR killed it),
127 if COMMAND was not found, 126 if it could not be executed.
.SH NOTES
A lock taken with \fBacquire\fR belongs to \fB\-\-pid\fR, by default the
process that ran \fBlockfile\fR (your shell or script): it stays held until
released or until that process exits.
\fBacquire\fR and \fBrun\fR take over a lock whose owner is certainly gone
(\fB\-\-no\-replace\-stale\fR refuses it, as labm8 does).
A lock whose owner is alive, unknown or on another host, or a malformed
file, is never taken without \fB\-\-force\fR.
.SH "SEE ALSO"
\fBflock\fR(1), \fBlslocks\fR(8)
"#;
