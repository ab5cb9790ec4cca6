//! The release archives and cargo-binstall agree: Cargo.toml's `[package.metadata.binstall]`
//! templates, rendered for each target .github/workflows/release.yml builds, name the archive
//! that the workflow's own packaging step makes, and the binary's place in it.

use std::collections::BTreeMap;
use std::path::Path;

use yaml_rust2::YamlLoader;

use crate::ci_reports::repo;
use crate::support::*;

/// `key = "value"` lines of each `[section]` of Cargo.toml (all the binstall table uses).
fn cargo_sections() -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let mut sections = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
        } else if let Some((key, value)) = line.split_once(" = ")
            && let Some(value) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'))
        {
            sections
                .entry(current.clone())
                .or_insert_with(BTreeMap::new)
                .insert(key.trim().to_string(), value.to_string());
        }
    }
    sections
}

/// cargo-binstall's `{ var }` substitution.
fn render(template: &str, target: &str) -> String {
    let windows = target.contains("windows");
    let mut out = template.to_string();
    for (var, value) in [
        ("repo", env!("CARGO_PKG_REPOSITORY")),
        ("version", env!("CARGO_PKG_VERSION")),
        ("name", "dbt-secoda"),
        ("target", target),
        ("bin", "dbt-secoda"),
        ("binary-ext", if windows { ".exe" } else { "" }),
    ] {
        out = out.replace(&format!("{{ {var} }}"), value);
    }
    assert!(!out.contains('{'), "a variable is left in {out}");
    out
}

/// The entries of `archive`, as `tar` or `unzip` lists them.
fn entries(archive: &Path) -> Vec<String> {
    let zip = archive.extension().is_some_and(|e| e == "zip");
    let mut cmd = clean_command(if zip { "unzip" } else { "tar" });
    if zip {
        cmd.arg("-Z1").arg(archive);
    } else {
        cmd.arg("-tzf").arg(archive);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn cargo_binstall_finds_each_release_archive_and_the_binary_in_it() {
    for tool in ["tar", "zip", "unzip", "sha256sum"] {
        if !have_tool(tool) {
            return;
        }
    }
    let sections = cargo_sections();
    let binstall = &sections["package.metadata.binstall"];
    let workflow = std::fs::read_to_string(repo().join(".github/workflows/release.yml")).unwrap();
    let workflow = YamlLoader::load_from_str(&workflow).unwrap().remove(0);
    let build = &workflow["jobs"]["build"];
    let package = build["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str() == Some("Package, with its sha256"))
        .expect("release.yml packages the binary in a step of that name");
    let script = package["run"].as_str().unwrap();
    let targets: Vec<&str> = build["strategy"]["matrix"]["include"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets.len(), 5, "{targets:?}");

    for target in targets {
        let overrides = sections.get(&format!("package.metadata.binstall.overrides.{target}"));
        let setting = |key: &str| {
            overrides
                .and_then(|o| o.get(key))
                .or_else(|| binstall.get(key))
                .unwrap_or_else(|| panic!("no binstall {key} for {target}"))
                .clone()
        };
        let url = render(&setting("pkg-url"), target);
        let bin_dir = render(&setting("bin-dir"), target);
        let format = setting("pkg-fmt");

        // The packaging step, run as on the runner: the binary in the job's folder, TARGET and
        // the tag in the environment; 7z (on the Windows runners) played by zip.
        let job = tempfile::tempdir().unwrap();
        let tools = tempfile::tempdir().unwrap();
        std::fs::write(job.path().join(&bin_dir), b"the binary").unwrap();
        let seven = tools.path().join("7z");
        std::fs::write(
            &seven,
            "#!/bin/sh\n# 7z a -tzip ARCHIVE FILE...\nshift 2\nout=$1\nshift\nexec zip -q \"$out\" \"$@\"\n",
        )
        .unwrap();
        let chmod = clean_command("chmod")
            .arg("+x")
            .arg(&seven)
            .status()
            .unwrap();
        assert!(chmod.success());
        let path = format!("{}:/usr/bin:/bin", tools.path().display());
        let out = clean_command("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(job.path())
            .env("PATH", path)
            .env("TARGET", target)
            .env("GITHUB_REF_NAME", format!("v{}", env!("CARGO_PKG_VERSION")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{target}: {}", stderr(&out));

        let made: Vec<String> = std::fs::read_dir(job.path().join("dist"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".sha256"))
            .collect();
        let archive = url.rsplit('/').next().unwrap();
        assert_eq!(made, [archive], "{target}: binstall looks for {url}");
        let suffix = match format.as_str() {
            "tgz" => ".tar.gz",
            "zip" => ".zip",
            other => panic!("pkg-fmt {other}"),
        };
        assert!(archive.ends_with(suffix), "{archive} is not {format}");
        assert_eq!(
            entries(&job.path().join("dist").join(archive)),
            [bin_dir],
            "{target}: bin-dir is the binary's path in the archive"
        );
        assert!(
            url.starts_with(&format!(
                "{}/releases/download/v{}/",
                env!("CARGO_PKG_REPOSITORY"),
                env!("CARGO_PKG_VERSION")
            )),
            "{url}"
        );
    }
}
