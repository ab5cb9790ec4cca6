//! Shell integration: completion scripts and man pages, from the same clap definitions as
//! `--help`, checked by the programs that read them.

use std::process::Stdio;

use crate::support::*;

/// What bash offers for the command line `words` (the last word is the one being completed).
fn bash_completions(script: &str, words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dbt-secoda.bash");
    std::fs::write(&file, script).unwrap();
    let line = words.join(" ");
    // The function `complete -p` names, called as readline would: COMP_WORDS, COMP_CWORD, and
    // the arguments (command, word being completed, word before it).
    let driver = format!(
        r#"source '{file}'
spec=$(complete -p dbt-secoda) || exit 3
function=$(sed -E 's/.* -F ([^ ]+) .*/\1/' <<<"$spec")
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE='{line}'
COMP_POINT=${{#COMP_LINE}}
"$function" dbt-secoda "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        file = file.display(),
        words = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    let output = clean_command("bash")
        .args(["--norc", "--noprofile", "-c", &driver])
        .output()
        .unwrap();
    assert!(output.status.success(), "bash: {}", stderr(&output));
    stdout(&output).lines().map(str::to_owned).collect()
}

#[test]
fn bash_completes_commands_options_and_values() {
    let script = stdout(&expect_exit(bin().args(["completions", "bash"]), 0));
    let offered = |words: &[&str]| bash_completions(&script, words);

    assert!(offered(&["dbt-secoda", "up"]).contains(&"upload".to_string()));
    let watch_options = offered(&["dbt-secoda", "watch", "--sta"]);
    assert!(
        watch_options.contains(&"--state-file".to_string()),
        "{watch_options:?}"
    );
    let mut fail_on = offered(&["dbt-secoda", "upload", "--fail-on", ""]);
    fail_on.sort();
    assert_eq!(fail_on, ["error", "never", "warn"]);
    let nested = offered(&["dbt-secoda", "integrations", "import-"]);
    assert!(nested.contains(&"import-csv".to_string()), "{nested:?}");
    assert!(nested.contains(&"import-jsonl".to_string()), "{nested:?}");
    let shells = offered(&["dbt-secoda", "completions", ""]);
    assert!(shells.contains(&"powershell".to_string()), "{shells:?}");
}

#[test]
fn every_shell_gets_a_script_naming_every_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout(&expect_exit(bin().args(["completions", shell]), 0));
        for command in ["upload", "watch", "integrations", "doctor"] {
            assert!(script.contains(command), "{shell}: no {command}");
        }
    }
    let wrong = expect_exit(bin().args(["completions", "tcsh"]), 2);
    assert_stderr_contains(&wrong, "possible values");
}

/// Renders a roff page as `man` would, failing on any warning groff gives.
fn render(page: &std::path::Path) -> String {
    let output = clean_command("groff")
        .args(["-man", "-Tutf8", "-ww", "-rLL=100n"])
        .arg(page)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "groff failed on {}",
        page.display()
    );
    assert_eq!(stderr(&output), "", "groff warns about {}", page.display());
    // Bold and underline are overstrikes in groff's terminal output.
    let text = stdout(&output);
    let mut plain = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn the_man_pages_render_without_warnings() {
    if !have_tool("groff") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("printed.1");
    std::fs::write(&top, expect_exit(bin().arg("man"), 0).stdout).unwrap();
    let text = render(&top);
    assert!(text.contains("dbt-secoda"), "{text}");
    for command in ["upload", "watch", "integrations", "completions"] {
        assert!(
            text.contains(command),
            "the page names no {command}:\n{text}"
        );
    }

    let pages = dir.path().join("man1");
    std::fs::create_dir(&pages).unwrap();
    expect_exit(bin().arg("man").arg("--dir").arg(&pages), 0);
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for page in ["dbt-secoda.1", "dbt-secoda-upload.1", "dbt-secoda-watch.1"] {
        assert!(names.contains(&page.to_string()), "{names:?}");
    }
    for name in &names {
        render(&pages.join(name));
    }
    let upload = render(&pages.join("dbt-secoda-upload.1"));
    for needle in [
        "--integration-id",
        "SECODA_INTEGRATION_ID",
        "--junit",
        "--fail-on",
    ] {
        assert!(
            upload.contains(needle),
            "dbt-secoda-upload.1 lacks {needle}"
        );
    }
    // The SYNOPSIS keeps each option's value, and no option is cut in two at a line's end.
    let synopsis = |page: &str| -> String {
        page.split("\nSYNOPSIS\n")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap_or_else(|| panic!("no SYNOPSIS:\n{page}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let upload_synopsis = synopsis(&upload);
    for needle in [
        "dbt-secoda upload [--integration-id ID]",
        "[--fail-on error|warn|never]",
        "[--junit FILE]",
        "[-v|--verbose]...",
    ] {
        assert!(
            upload_synopsis.contains(needle),
            "{needle}: {upload_synopsis}"
        );
    }
    let jsonl = synopsis(&render(
        &pages.join("dbt-secoda-integrations-import-jsonl.1"),
    ));
    assert!(
        jsonl.starts_with("dbt-secoda integrations import-jsonl --resources FILE")
            && jsonl.contains(" [--external-parent ID]... ")
            && jsonl.ends_with(" ID"),
        "{jsonl}"
    );
    // The exit codes stay a table: each code starts its own line, and the sentence after the
    // last row is a paragraph of its own.
    let status = upload
        .split("\nEXIT STATUS\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no EXIT STATUS section:\n{upload}"));
    for code in ["0", "1", "2", "3", "4", "5", "101", "130"] {
        assert!(
            status
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{code} "))),
            "code {code} has no line of its own:\n{status}"
        );
    }
    let last_row = status
        .lines()
        .find(|l| l.trim_start().starts_with("130 "))
        .unwrap();
    assert!(!last_row.contains("When "), "{status}");
    let lines: Vec<&str> = status.lines().collect();
    let sentence = lines
        .iter()
        .position(|l| l.trim_start().starts_with("When "))
        .unwrap_or_else(|| panic!("the sentence starts no line:\n{status}"));
    assert!(lines[sentence - 1].trim().is_empty(), "{status}");

    let missing = expect_exit(bin().args(["man", "--dir", "/nonexistent/man1"]), 2);
    assert_stderr_contains(&missing, "/nonexistent/man1");
}
