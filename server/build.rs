//! Embeds the built-in bot packs: every `corpus/<pack>/` folder with a `manifest.json` becomes
//! a list of `(pack, file, text)` entries compiled into the binary (see `bot::corpus::builtin`).
//! The evaluation sets (`corpus/eval`, no manifest) are not embedded.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    // A directory here makes cargo rescan everything under it for changes.
    println!("cargo:rerun-if-changed={}", corpus.display());
    let mut entries: Vec<(String, String, PathBuf)> = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(&corpus) {
        for dir in dirs.flatten() {
            let path = dir.path();
            if !path.join("manifest.json").is_file() {
                continue;
            }
            let pack = dir.file_name().to_string_lossy().into_owned();
            let Ok(files) = std::fs::read_dir(&path) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.ends_with(".json") && file.path().is_file() {
                    let abs = file.path().canonicalize().unwrap_or_else(|_| file.path());
                    entries.push((pack.clone(), name, abs));
                }
            }
        }
    }
    entries.sort();
    let mut out = String::from(
        "/// `(pack, file name, contents)` of the packs under `corpus/` at build time.\n\
         pub static BUILTIN_FILES: &[(&str, &str, &str)] = &[\n",
    );
    for (pack, name, path) in &entries {
        let _ = writeln!(
            out,
            "    ({pack:?}, {name:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR is set")).join("builtin_corpus.rs");
    std::fs::write(dest, out).expect("write builtin_corpus.rs");
}
