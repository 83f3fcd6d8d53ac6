//! The daemon's TOML config, built key by key over the harness defaults.

use std::path::{Path, PathBuf};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A hookd TOML config: sections of `key = <raw TOML value>`. `""` is the top level.
#[derive(Debug, Clone)]
pub struct Config {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Config {
    /// The test defaults of the harness contract, with `data_dir` at `<dir>/data`.
    pub fn new(dir: &Path) -> Self {
        let data_dir = dir.join("data");
        let mut cfg = Config {
            sections: Vec::new(),
        };
        cfg = cfg
            .set("", "listen", "\"127.0.0.1:0\"")
            .set("", "data_dir", &toml_str(&data_dir.to_string_lossy()))
            .set("auth", "admin_key", &toml_str(ADMIN_KEY))
            .set("sender", "allow_private_targets", "true")
            .set("sender", "timeout", "\"2s\"")
            .set("retry", "schedule", "[\"200ms\", \"400ms\"]")
            .set("retry", "jitter", "0.0");
        cfg
    }

    /// Sets (or replaces) `key` in `[section]` to the raw TOML `value`.
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Self {
        let idx = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let entries = &mut self.sections[idx].1;
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value.to_string(),
            None => entries.push((key.to_string(), value.to_string())),
        }
        self
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // The top level has to come before any [section].
        for (section, entries) in self.sections.iter().filter(|(s, _)| s.is_empty()) {
            let _ = section;
            for (k, v) in entries {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        for (section, entries) in self.sections.iter().filter(|(s, _)| !s.is_empty()) {
            out.push_str(&format!("\n[{section}]\n"));
            for (k, v) in entries {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        out
    }

    /// Writes the config to `<dir>/hookd.toml` and returns the path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("hookd.toml");
        std::fs::write(&path, self.render()).unwrap();
        path
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
