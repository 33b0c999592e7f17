//! Standalone mode: Kubernetes manifests from a YAML file, or every `*.yaml`/`*.yml` in a
//! directory, compiled with the same compiler the operator uses, and re-read when they change.
//!
//! Change detection polls contents (not mtimes or inotify): it sees atomic-rename saves, symlink
//! swaps (as kubelet does for mounted ConfigMaps) and edits within one mtime tick alike, and at a
//! few kilobytes every 250 ms it costs nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentgateway_compiler::{Inputs, compile_standalone, parse_manifests};

use super::{ConfigSource, SourceEvent};

/// How often the files are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Manifests on disk.
pub struct FileSource {
    path: PathBuf,
    last: Option<Vec<(String, String)>>,
    interval: Duration,
}

impl FileSource {
    /// Watches `path`, a file or a directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            last: None,
            interval: POLL_INTERVAL,
        }
    }

    /// Uses another poll interval (tests).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

impl ConfigSource for FileSource {
    async fn next(&mut self) -> SourceEvent {
        loop {
            if self.last.is_some() {
                tokio::time::sleep(self.interval).await;
            }
            let sources = match read_sources(&self.path).await {
                Ok(sources) => sources,
                Err(message) => {
                    let seen = Some(vec![(message.clone(), String::new())]);
                    if self.last != seen {
                        self.last = seen;
                        return SourceEvent::Rejected(message);
                    }
                    continue;
                }
            };
            if self.last.as_ref() == Some(&sources) {
                continue;
            }
            let event = match parse_manifests(&sources) {
                Err(e) => SourceEvent::Rejected(e.to_string()),
                // Whether Redis is configured is the proxy state's check (it names the flag).
                Ok(inputs) => match compile_standalone(&Inputs {
                    shared_counters: true,
                    ..inputs
                }) {
                    Ok(compiled) => SourceEvent::Config(Box::new(compiled)),
                    Err(e) => SourceEvent::Rejected(e.to_string()),
                },
            };
            self.last = Some(sources);
            return event;
        }
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// `(name, contents)` of the file, or of each YAML file of the directory in name order.
async fn read_sources(path: &Path) -> Result<Vec<(String, String)>, String> {
    let failed = |e: std::io::Error| format!("failed to read {}: {e}", path.display());
    let metadata = tokio::fs::metadata(path).await.map_err(failed)?;
    let mut files = Vec::new();
    if metadata.is_dir() {
        let mut entries = tokio::fs::read_dir(path).await.map_err(failed)?;
        while let Some(entry) = entries.next_entry().await.map_err(failed)? {
            let file = entry.path();
            let is_yaml = file.extension().is_some_and(|e| e == "yaml" || e == "yml");
            let hidden = file
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if is_yaml && !hidden {
                files.push(file);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let text = tokio::fs::read_to_string(&file)
            .await
            .map_err(|e| format!("failed to read {}: {e}", file.display()))?;
        sources.push((file.display().to_string(), text));
    }
    Ok(sources)
}
