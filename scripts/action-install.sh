#!/usr/bin/env bash
# Installs dbt-secoda for the GitHub Action (action.yml), into $RUNNER_TEMP/dbt-secoda/bin, and
# puts that folder on the job's PATH.
#
# With DBT_SECODA_VERSION set (0.2.0 or v0.2.0): the release's archive for this runner's OS and
# architecture, checked against the release's .sha256 file before anything is unpacked; a
# mismatch stops the install. Empty: built from the action's own source (GITHUB_ACTION_PATH)
# with `cargo install --locked --path`, which takes minutes.
#
# Environment: DBT_SECODA_VERSION; DBT_SECODA_REPOSITORY (owner/name, the action's own by
# default); DBT_SECODA_RELEASES (the releases' base URL, for a mirror; default
# https://github.com/OWNER/NAME/releases/download); and the runner's RUNNER_TEMP, RUNNER_OS,
# RUNNER_ARCH, GITHUB_PATH, GITHUB_ACTION_PATH.
set -euo pipefail

fail() {
  printf '::error title=dbt-secoda install::%s\n' "$1" >&2
  exit 1
}

root="${RUNNER_TEMP:?RUNNER_TEMP is not set: run this on a GitHub runner}/dbt-secoda"
bin="$root/bin"
version="${DBT_SECODA_VERSION:-}"

if [ -z "$version" ]; then
  command -v cargo >/dev/null ||
    fail "building from source needs cargo on the runner (e.g. dtolnay/rust-toolchain); or set the action's version input to a release"
  echo "building dbt-secoda from ${GITHUB_ACTION_PATH:?} (set the version input to skip this)" >&2
  cargo install --locked --quiet --path "$GITHUB_ACTION_PATH" --root "$root"
else
  # Only a release number reaches a URL or a file name.
  [[ "$version" =~ ^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] ||
    fail "version '$version' is not a release number (like 0.2.0); leave it empty to build from source"
  version="${version#v}"

  case "${RUNNER_OS:-$(uname -s)}/${RUNNER_ARCH:-$(uname -m)}" in
    Linux/X64 | Linux/x86_64) target=x86_64-unknown-linux-gnu ;;
    Linux/ARM64 | Linux/aarch64) target=aarch64-unknown-linux-gnu ;;
    macOS/ARM64 | Darwin/arm64) target=aarch64-apple-darwin ;;
    macOS/X64 | Darwin/x86_64) target=x86_64-apple-darwin ;;
    Windows/X64) target=x86_64-pc-windows-msvc ;;
    *) fail "no dbt-secoda release is built for ${RUNNER_OS:-?} ${RUNNER_ARCH:-?}; leave the version input empty to build from source" ;;
  esac
  case "$target" in
    *windows*) archive="dbt-secoda-v$version-$target.zip" exe=dbt-secoda.exe ;;
    *) archive="dbt-secoda-v$version-$target.tar.gz" exe=dbt-secoda ;;
  esac

  repository="${DBT_SECODA_REPOSITORY:-${GITHUB_ACTION_REPOSITORY:-}}"
  if [ -n "${DBT_SECODA_RELEASES:-}" ]; then
    base="${DBT_SECODA_RELEASES%/}"
    protocols='=https,http'
  else
    [ -n "$repository" ] || fail "cannot tell which repository's releases to use: set DBT_SECODA_REPOSITORY"
    base="https://github.com/$repository/releases/download"
    protocols='=https'
  fi
  url="$base/v$version/$archive"

  work=$(mktemp -d "${RUNNER_TEMP}/dbt-secoda-download.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  fetch() {
    curl --proto "$protocols" --fail --silent --show-error --location --retry 5 \
      --output "$2" "$1" || fail "cannot download $1 (is v$version released, with an asset for $target?)"
  }
  fetch "$url.sha256" "$work/$archive.sha256"
  fetch "$url" "$work/$archive"

  expected=$(cut -d ' ' -f 1 <"$work/$archive.sha256" | tr -d '\r\n')
  [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || fail "$url.sha256 does not hold a sha256"
  # From stdin: given a path with a backslash (RUNNER_TEMP on Windows), sha256sum escapes its
  # output line with a leading backslash.
  if command -v sha256sum >/dev/null; then
    actual=$(sha256sum <"$work/$archive" | cut -d ' ' -f 1)
  else
    actual=$(shasum -a 256 <"$work/$archive" | cut -d ' ' -f 1)
  fi
  [ "$actual" = "$expected" ] ||
    fail "$archive has sha256 $actual, but the release says $expected: not installed (a corrupted or altered download)"

  mkdir -p "$work/unpacked" "$bin"
  case "$archive" in
    *.zip)
      if command -v unzip >/dev/null; then
        unzip -q "$work/$archive" -d "$work/unpacked"
      else
        7z x -bd -y "-o$work/unpacked" "$work/$archive" >/dev/null
      fi
      ;;
    *) tar -xzf "$work/$archive" -C "$work/unpacked" ;;
  esac
  [ -f "$work/unpacked/$exe" ] || fail "$archive holds no $exe"
  mv "$work/unpacked/$exe" "$bin/$exe"
  chmod +x "$bin/$exe"
fi

echo "$bin" >>"${GITHUB_PATH:?GITHUB_PATH is not set: run this on a GitHub runner}"
"$bin/dbt-secoda" --version >&2
