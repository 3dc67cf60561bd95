//! Question-and-answer packs (format 1, `corpus/README.md`): loaded from a folder or from the
//! copies embedded in the binary at build time.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::Context as _;
use serde::Deserialize;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_corpus.rs"));
}

/// One pack: a topic area (ecommerce, medical…) in one or more languages.
#[derive(Debug, Clone)]
pub struct Pack {
    pub name: String,
    pub version: String,
    pub title: BTreeMap<String, String>,
    pub description: String,
    /// One entry per language file.
    pub languages: Vec<PackLang>,
}

/// The pairs and synonyms of one pack in one language.
#[derive(Debug, Clone, Deserialize)]
pub struct PackLang {
    pub lang: String,
    #[serde(default)]
    pub synonyms: Vec<Vec<String>>,
    pub qa: Vec<QaPair>,
}

/// A topic: several ways to ask, one answer.
#[derive(Debug, Clone, Deserialize)]
pub struct QaPair {
    pub id: String,
    pub questions: Vec<String>,
    pub answer: String,
    #[serde(default)]
    pub entities: Vec<String>,
    #[serde(default)]
    pub quick_replies: Vec<String>,
    #[serde(default)]
    pub handoff: bool,
    /// An example of what the business does not answer (weather, jokes, homework…): when a
    /// message is closest to one of these, the bot declines as if nothing had matched.
    #[serde(default)]
    pub decline: bool,
}

#[derive(Deserialize)]
struct Manifest {
    format: u32,
    pack: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    title: BTreeMap<String, String>,
    #[serde(default)]
    description: String,
    languages: Vec<String>,
}

#[derive(Deserialize)]
struct LangFile {
    format: u32,
    #[serde(default)]
    pack: Option<String>,
    #[serde(flatten)]
    body: PackLang,
}

impl Pack {
    /// Parses a pack from its manifest and a reader of its language files (`<lang>.json`).
    fn parse(
        folder: &str,
        manifest: &str,
        mut read: impl FnMut(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<Pack> {
        let m: Manifest = serde_json::from_str(manifest)
            .with_context(|| format!("pack {folder}: invalid manifest.json"))?;
        anyhow::ensure!(
            m.format == 1,
            "pack {folder}: format {} is not supported (expected 1)",
            m.format
        );
        let mut languages = Vec::new();
        for lang in &m.languages {
            let file = format!("{lang}.json");
            let text = read(&file).with_context(|| format!("pack {folder}: reading {file}"))?;
            let parsed: LangFile = serde_json::from_str(&text)
                .with_context(|| format!("pack {folder}: invalid {file}"))?;
            anyhow::ensure!(
                parsed.format == 1,
                "pack {folder}: {file} has format {} (expected 1)",
                parsed.format
            );
            if let Some(p) = &parsed.pack {
                anyhow::ensure!(
                    p == &m.pack,
                    "pack {folder}: {file} says pack {p:?}, the manifest {:?}",
                    m.pack
                );
            }
            let mut body = parsed.body;
            anyhow::ensure!(
                &body.lang == lang,
                "pack {folder}: {file} says lang {:?}",
                body.lang
            );
            let mut seen = HashSet::new();
            for qa in &body.qa {
                anyhow::ensure!(
                    seen.insert(qa.id.as_str()),
                    "pack {folder}: {file}: id {} appears twice",
                    qa.id
                );
            }
            body.qa.retain(|qa| !qa.questions.is_empty());
            languages.push(body);
        }
        Ok(Pack {
            name: m.pack,
            version: m.version,
            title: m.title,
            description: m.description,
            languages,
        })
    }

    /// Loads one pack folder (`manifest.json` and one `<lang>.json` per language).
    pub fn load_dir(dir: &Path) -> anyhow::Result<Pack> {
        let folder = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let manifest = std::fs::read_to_string(dir.join("manifest.json"))
            .with_context(|| format!("reading {}", dir.join("manifest.json").display()))?;
        Pack::parse(&folder, &manifest, |file| {
            Ok(std::fs::read_to_string(dir.join(file))?)
        })
    }

    /// Number of answering pairs over all languages (one per id and language; decline examples
    /// are not answers and are not counted).
    pub fn pair_count(&self) -> usize {
        self.languages
            .iter()
            .flat_map(|l| &l.qa)
            .filter(|qa| !qa.decline)
            .count()
    }
}

/// Loads every pack folder (one with a `manifest.json`) under `root`, keeping those in `only`
/// (all when empty; matched by folder name).
pub fn load_dir(root: &Path, only: &[String]) -> anyhow::Result<Vec<Pack>> {
    let mut dirs: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(root)
        .with_context(|| format!("reading corpus folder {}", root.display()))?
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(_, p)| p.join("manifest.json").is_file())
        .collect();
    dirs.sort();
    for o in only {
        anyhow::ensure!(
            dirs.iter().any(|(n, _)| n == o),
            "no pack named {o:?} in {} (available: {})",
            root.display(),
            dirs.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    dirs.into_iter()
        .filter(|(n, _)| only.is_empty() || only.contains(n))
        .map(|(_, dir)| Pack::load_dir(&dir))
        .collect()
}

/// The names of the packs embedded in the binary.
pub fn builtin_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = embedded::BUILTIN_FILES.iter().map(|(p, _, _)| *p).collect();
    names.dedup();
    names
}

/// Loads the packs embedded at build time, keeping those in `only` (all when empty).
pub fn builtin(only: &[String]) -> anyhow::Result<Vec<Pack>> {
    let names = builtin_names();
    for o in only {
        anyhow::ensure!(
            names.contains(&o.as_str()),
            "no built-in pack named {o:?} (available: {})",
            names.join(", ")
        );
    }
    let mut packs = Vec::new();
    for name in names {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let file = |f: &str| {
            embedded::BUILTIN_FILES
                .iter()
                .find(|(p, n, _)| *p == name && *n == f)
                .map(|(_, _, text)| (*text).to_owned())
                .ok_or_else(|| anyhow::anyhow!("{f} is not in the built-in pack"))
        };
        let manifest = file("manifest.json")?;
        packs.push(Pack::parse(name, &manifest, file)?);
    }
    Ok(packs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_pack_and_rejects_duplicates() {
        let manifest = r#"{"format":1,"pack":"shop","version":"1.0.0","languages":["en"]}"#;
        let en = r#"{"format":1,"pack":"shop","lang":"en","synonyms":[["refund","money back"]],
            "qa":[{"id":"shop.a","questions":["q1","q2","q3"],"answer":"a"}]}"#;
        let p = Pack::parse("shop", manifest, |_| Ok(en.to_owned())).unwrap();
        assert_eq!(p.name, "shop");
        assert_eq!(p.pair_count(), 1);
        assert_eq!(p.languages[0].synonyms[0][1], "money back");
        let dup = en.replace(
            r#"{"id":"shop.a""#,
            r#"{"id":"shop.a","questions":["x"],"answer":"b"},{"id":"shop.a""#,
        );
        let err = Pack::parse("shop", manifest, |_| Ok(dup.clone())).unwrap_err();
        assert!(format!("{err:#}").contains("twice"), "{err:#}");
    }
}
