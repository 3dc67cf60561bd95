//! Widget weight, read from the built assets: the loader script a host page includes, and what
//! the browser fetches when the chat is first opened (the loader plus the frame's JS, wasm and
//! CSS bundles), each gzipped as a server would send it.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::report::Report;

pub struct Widget {
    /// The loader script and its gzipped size.
    pub loader: Option<(PathBuf, u64)>,
    /// Total gzipped bytes of the first open, and the files counted.
    pub first_open: Option<(u64, Vec<(String, u64)>)>,
    pub note: Option<String>,
}

pub fn gz_len(bytes: &[u8]) -> u64 {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).expect("writing to a Vec");
    enc.finish().expect("finishing a Vec").len() as u64
}

pub fn weigh(root: &Path) -> Widget {
    let site = root.join("target/site");
    let loader_path = [site.join("widget.js"), root.join("public/widget.js")]
        .into_iter()
        .find(|p| p.is_file());
    let loader = loader_path.and_then(|p| {
        let bytes = std::fs::read(&p).ok()?;
        Some((p, gz_len(&bytes)))
    });
    let pkg = site.join("pkg");
    let (first_open, note) = match (&loader, std::fs::read_dir(&pkg)) {
        (Some((lp, lgz)), Ok(dir)) => {
            // With hashed file names old builds may linger: count the newest file of each kind.
            let mut newest: Vec<(String, std::time::SystemTime, PathBuf)> = Vec::new();
            for e in dir.flatten() {
                let p = e.path();
                let Some(ext) = p.extension().and_then(|e| e.to_str()) else {
                    continue;
                };
                if !["js", "wasm", "css"].contains(&ext) {
                    continue;
                }
                let Ok(modified) = e.metadata().and_then(|m| m.modified()) else {
                    continue;
                };
                match newest.iter_mut().find(|(x, _, _)| x == ext) {
                    Some(slot) if slot.1 >= modified => {}
                    Some(slot) => *slot = (ext.to_owned(), modified, p),
                    None => newest.push((ext.to_owned(), modified, p)),
                }
            }
            let mut files = vec![(display(lp, root), *lgz)];
            for (_, _, p) in newest {
                if let Ok(bytes) = std::fs::read(&p) {
                    files.push((display(&p, root), gz_len(&bytes)));
                }
            }
            let total = files.iter().map(|(_, n)| n).sum();
            (Some((total, files)), None)
        }
        (_, Err(_)) => (
            None,
            Some(format!(
                "{} is missing (build the site with `make build`): first-open weight skipped",
                display(&pkg, root)
            )),
        ),
        (None, _) => (None, Some("no widget.js found".into())),
    };
    Widget {
        loader,
        first_open,
        note,
    }
}

fn display(p: &Path, root: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

impl Widget {
    pub fn report(&self, out: &mut Report) {
        match &self.loader {
            Some((p, gz)) => {
                out.note(format!("widget loader: {}", p.display()));
                out.line("widget_loader_gz_bytes", gz);
            }
            None => out.line("widget_loader_gz_bytes", "n/a"),
        }
        match &self.first_open {
            Some((total, files)) => {
                out.note(format!(
                    "widget first open (from built assets): {}",
                    files
                        .iter()
                        .map(|(f, n)| format!("{f} {n} B"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                out.line("widget_first_open_gz_bytes", total);
            }
            None => out.line("widget_first_open_gz_bytes", "n/a"),
        }
        if let Some(n) = &self.note {
            out.note(n.clone());
        }
    }
}
