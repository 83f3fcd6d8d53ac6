//! Running the web inspector's browser checks (`tests/ui/inspector.mjs`): Node.js, Debian's
//! Chromium and the npm packages of `tests/ui` must be there; CI installs them, so a missing
//! one fails the test with what to install instead of skipping it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the browser checks and their npm packages live.
pub fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui")
}

/// `<target>/ui-screenshots`, emptied.
pub fn fresh_screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("ui-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Chromium as the checks launch it (`HOOKD_CHROMIUM` overrides, as in inspector.mjs).
fn chromium() -> PathBuf {
    std::env::var_os("HOOKD_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Panics with what to install when something the browser checks need is missing.
pub fn require_browser_tools() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "the web inspector tests need Node.js (`node` on PATH): apt-get install -y nodejs \
         ({node:?})"
    );
    let browser = chromium();
    assert!(
        browser.is_file(),
        "the web inspector tests need Debian's Chromium at {}: apt-get install -y chromium",
        browser.display()
    );
    assert!(
        ui_dir()
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "the web inspector tests need playwright-core: run `npm ci` in {}",
        ui_dir().display()
    );
}

/// Runs `node inspector.mjs <base> <key> <screenshots>` to the end.
pub async fn run_inspector(base: &str, key: &str, screenshots: &Path) -> Output {
    require_browser_tools();
    let mut cmd = Command::new("node");
    cmd.current_dir(ui_dir())
        .arg("inspector.mjs")
        .arg(base)
        .arg(key)
        .arg(screenshots);
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("starting node")
}
