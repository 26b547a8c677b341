//! Reload when the task file changes on disk.
//!
//! The file's directory is watched, not the file: editors and `git checkout` save by writing
//! a new file and renaming it over the old one, which a watch on the old file would miss.

use std::path::Path;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Starts watching; every change to the file asks for a reload on `tx`. Keep the returned
/// watcher alive for as long as changes should be seen.
///
/// # Errors
/// When the directory cannot be watched.
pub fn watch(config: &Path, tx: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    let dir = config.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = config.file_name().map(|n| n.to_owned());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let ours = event.paths.iter().any(|p| p.file_name() == name.as_deref());
        let changed = matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_));
        if ours && changed {
            // A reload already asked for covers this change too.
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
