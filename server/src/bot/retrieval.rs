//! The built-in retrieval engine: finds the question-and-answer pair closest to a visitor's
//! message, in memory, without network.
//!
//! Each question variant of each pair is a document. A message is scored against them two ways:
//! - **BM25** over words (jieba for Chinese, stemmed English words), after each pack's synonyms
//!   are folded to one token per group; normalized by the score the message would get against
//!   itself, so 1.0 means "every word of the message matched";
//! - **character n-grams** (Chinese characters and pairs, English word trigrams), TF-IDF cosine,
//!   which forgives typos and short Chinese questions that segment differently.
//!
//! A pair scores as its best variant. The confidence (0..1) comes from the best pair's blended
//! score and its margin over the next different pair, through one fixed logistic curve, so a
//! threshold means the same in every pack and language.

use std::collections::{BTreeMap, HashMap};

use super::corpus::{Pack, QaPair};
use super::entities;
use super::text::{self, Family, Synonyms};
use super::{BotContext, Intent, Response, fallback_text};

const K1: f32 = 1.2;
const B: f32 = 0.75;
/// Weight of the normalized BM25 score in the blend (the rest is the n-gram cosine).
const BM25_WEIGHT: f32 = 0.6;

/// The calibration curve: `confidence = σ(SLOPE·(score − CENTER) + MARGIN_GAIN·margin)`.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    pub center: f32,
    pub slope: f32,
    pub margin_gain: f32,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            center: 0.42,
            slope: 12.0,
            margin_gain: 6.0,
        }
    }
}

impl Calibration {
    pub fn confidence(&self, score: f32, margin: f32) -> f32 {
        let x = self.slope * (score - self.center) + self.margin_gain * margin;
        (1.0 / (1.0 + (-x).exp())).clamp(0.0, 1.0)
    }
}

/// One pair of one language, as answered.
#[derive(Debug, Clone)]
pub struct Pair {
    pub pack: usize,
    pub lang: String,
    pub qa: QaPair,
}

struct Doc {
    pair: u32,
    pack: u32,
    /// Terms after synonyms and stop words.
    len: u32,
}

/// The word index of one pack in one language (synonyms are per pack).
#[derive(Default)]
struct PackTerms {
    synonyms: Synonyms,
    postings: HashMap<String, Vec<(u32, u16)>>,
}

struct LangIndex {
    lang: String,
    family: Family,
    docs: Vec<Doc>,
    /// Indexed like `RetrievalEngine::packs`.
    packs: Vec<PackTerms>,
    /// Document frequency of each term over the whole language.
    df: HashMap<String, u32>,
    avgdl: f32,
    /// n-gram → (doc, weight of the n-gram in the doc's unit vector).
    ngrams: HashMap<String, Vec<(u32, f32)>>,
    ngram_df: HashMap<String, u32>,
}

impl LangIndex {
    fn idf(&self, term: &str) -> f32 {
        let n = self.docs.len() as f32;
        let df = self.df.get(term).copied().unwrap_or(0) as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    fn ngram_idf(&self, g: &str) -> f32 {
        let n = self.docs.len() as f32;
        let df = self.ngram_df.get(g).copied().unwrap_or(0) as f32;
        ((n + 1.0) / (df + 1.0)).ln() + 1.0
    }
}

/// A scored candidate pair.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Index into [`RetrievalEngine::pairs`].
    pub pair: usize,
    /// The blended score (0..1) of the pair's best question variant.
    pub score: f32,
    pub bm25: f32,
    pub ngram: f32,
}

/// The outcome of a search: the language searched, the best pairs and the confidence of the
/// first one.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub lang: String,
    pub hits: Vec<Hit>,
    pub confidence: f32,
}

/// The retrieval engine over a set of packs. Build it once ([`RetrievalEngine::load`]); it is
/// immutable and cheap to share (`Arc`).
pub struct RetrievalEngine {
    packs: Vec<String>,
    pairs: Vec<Pair>,
    /// (id, lang) → pair index.
    by_id: HashMap<(String, String), usize>,
    langs: Vec<LangIndex>,
    handoff: super::HandoffWords,
    calibration: Calibration,
}

impl std::fmt::Debug for RetrievalEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetrievalEngine")
            .field("packs", &self.packs)
            .field("pairs", &self.pairs.len())
            .finish()
    }
}

fn tf_counts<'a>(items: impl IntoIterator<Item = &'a String>) -> HashMap<&'a str, u32> {
    let mut m = HashMap::new();
    for t in items {
        *m.entry(t.as_str()).or_insert(0) += 1;
    }
    m
}

impl RetrievalEngine {
    /// Indexes `packs` (every language of each) with the default hand-over words.
    pub fn load(packs: Vec<Pack>) -> RetrievalEngine {
        Self::with_handoff_words(packs, super::HandoffWords::default())
    }

    /// Indexes `packs`; messages containing one of `handoff` go to a person.
    pub fn with_handoff_words(packs: Vec<Pack>, handoff: super::HandoffWords) -> RetrievalEngine {
        let pack_names: Vec<String> = packs.iter().map(|p| p.name.clone()).collect();
        let mut pairs = Vec::new();
        let mut langs: Vec<LangIndex> = Vec::new();
        // Term lists per document, kept until document frequencies are known.
        let mut doc_terms: Vec<Vec<Vec<String>>> = Vec::new();
        let mut doc_grams: Vec<Vec<Vec<String>>> = Vec::new();
        for (pi, pack) in packs.into_iter().enumerate() {
            for pl in pack.languages {
                let family = Family::of(&pl.lang);
                let li = match langs.iter().position(|l| l.lang == pl.lang) {
                    Some(i) => i,
                    None => {
                        langs.push(LangIndex {
                            lang: pl.lang.clone(),
                            family,
                            docs: Vec::new(),
                            packs: (0..pack_names.len())
                                .map(|_| PackTerms::default())
                                .collect(),
                            df: HashMap::new(),
                            avgdl: 1.0,
                            ngrams: HashMap::new(),
                            ngram_df: HashMap::new(),
                        });
                        doc_terms.push(Vec::new());
                        doc_grams.push(Vec::new());
                        langs.len() - 1
                    }
                };
                let index = &mut langs[li];
                let synonyms = Synonyms::new(family, &pl.synonyms, &pack.name);
                for qa in pl.qa {
                    let pair = pairs.len();
                    for q in &qa.questions {
                        let clean = entities::strip(q);
                        let base = text::tokenize(family, &clean);
                        let terms = synonyms.terms(family, &clean, &base);
                        index.docs.push(Doc {
                            pair: pair as u32,
                            pack: pi as u32,
                            len: terms.len() as u32,
                        });
                        doc_terms[li].push(terms);
                        doc_grams[li].push(text::char_ngrams(family, &clean));
                    }
                    pairs.push(Pair {
                        pack: pi,
                        lang: pl.lang.clone(),
                        qa,
                    });
                }
                index.packs[pi].synonyms = synonyms;
            }
        }
        for (li, index) in langs.iter_mut().enumerate() {
            let total: usize = doc_terms[li].iter().map(Vec::len).sum();
            index.avgdl = (total as f32 / index.docs.len().max(1) as f32).max(1.0);
            for (d, terms) in doc_terms[li].iter().enumerate() {
                let pack = index.docs[d].pack as usize;
                for (t, n) in tf_counts(terms) {
                    *index.df.entry(t.to_owned()).or_insert(0) += 1;
                    index.packs[pack]
                        .postings
                        .entry(t.to_owned())
                        .or_default()
                        .push((d as u32, n.min(u16::MAX as u32) as u16));
                }
            }
            for grams in &doc_grams[li] {
                for g in tf_counts(grams).into_keys() {
                    *index.ngram_df.entry(g.to_owned()).or_insert(0) += 1;
                }
            }
            for (d, grams) in doc_grams[li].iter().enumerate() {
                let weights: Vec<(&str, f32)> = tf_counts(grams)
                    .into_iter()
                    .map(|(g, n)| (g, (1.0 + (n as f32).ln()) * index.ngram_idf(g)))
                    .collect();
                let norm = weights.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
                if norm == 0.0 {
                    continue;
                }
                for (g, w) in weights {
                    index
                        .ngrams
                        .entry(g.to_owned())
                        .or_default()
                        .push((d as u32, w / norm));
                }
            }
        }
        let by_id = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.qa.id.clone(), p.lang.clone()), i))
            .collect();
        RetrievalEngine {
            packs: pack_names,
            pairs,
            by_id,
            langs,
            handoff,
            calibration: Calibration::default(),
        }
    }

    /// Replaces the calibration curve (for experiments; the default is tuned on the corpus).
    pub fn with_calibration(mut self, calibration: Calibration) -> Self {
        self.calibration = calibration;
        self
    }

    /// The names of the loaded packs.
    pub fn packs(&self) -> &[String] {
        &self.packs
    }

    /// Every pair, one per (id, language).
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// The pair with this id in this language, or in any language if it has none there.
    pub fn pair(&self, id: &str, lang: &str) -> Option<&Pair> {
        self.by_id
            .get(&(id.to_owned(), lang.to_owned()))
            .or_else(|| {
                self.langs
                    .iter()
                    .find_map(|l| self.by_id.get(&(id.to_owned(), l.lang.clone())))
            })
            .map(|&i| &self.pairs[i])
    }

    /// The languages indexed.
    pub fn languages(&self) -> Vec<&str> {
        self.langs.iter().map(|l| l.lang.as_str()).collect()
    }

    /// Number of question variants indexed.
    pub fn question_count(&self) -> usize {
        self.langs.iter().map(|l| l.docs.len()).sum()
    }

    pub fn handoff_words(&self) -> &super::HandoffWords {
        &self.handoff
    }

    /// Scores one language; `active` holds the pack indices to consider.
    fn search_lang(&self, index: &LangIndex, active: &[bool], message: &str, k: usize) -> Search {
        let family = index.family;
        let base = text::tokenize(family, message);
        let mut best: HashMap<u32, (f32, f32, f32)> = HashMap::new();
        let mut ngram: HashMap<u32, f32> = HashMap::new();

        // Character n-grams: cosine against every document sharing one.
        let grams = text::char_ngrams(family, message);
        let q: Vec<(&str, f32)> = tf_counts(&grams)
            .into_iter()
            .map(|(g, n)| (g, (1.0 + (n as f32).ln()) * index.ngram_idf(g)))
            .collect();
        let qnorm = q.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        if qnorm > 0.0 {
            for (g, w) in &q {
                if let Some(list) = index.ngrams.get(*g) {
                    for &(d, dw) in list {
                        if active[index.docs[d as usize].pack as usize] {
                            *ngram.entry(d).or_insert(0.0) += w / qnorm * dw;
                        }
                    }
                }
            }
        }

        // BM25 per pack, each with its own synonyms.
        let mut bm25_of: HashMap<u32, f32> = HashMap::new();
        for (pi, pack) in index.packs.iter().enumerate() {
            if !active[pi] || pack.postings.is_empty() {
                continue;
            }
            let terms = if pack.synonyms.is_empty() {
                base.iter()
                    .filter(|t| !t.stop)
                    .map(|t| t.text.clone())
                    .collect()
            } else {
                pack.synonyms.terms(family, message, &base)
            };
            let self_score = self_score(index, &terms);
            if self_score <= 0.0 {
                continue;
            }
            for (t, _) in tf_counts(&terms) {
                let Some(list) = pack.postings.get(t) else {
                    continue;
                };
                let idf = index.idf(t);
                for &(d, tf) in list {
                    let tf = tf as f32;
                    let len = index.docs[d as usize].len as f32;
                    let s = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / index.avgdl));
                    *bm25_of.entry(d).or_insert(0.0) += s / self_score;
                }
            }
        }

        let mut docs: Vec<u32> = bm25_of.keys().copied().collect();
        docs.extend(ngram.keys().copied().filter(|d| !bm25_of.contains_key(d)));
        for d in docs {
            let b = bm25_of.get(&d).copied().unwrap_or(0.0).min(1.0);
            let g = ngram.get(&d).copied().unwrap_or(0.0).min(1.0);
            let s = BM25_WEIGHT * b + (1.0 - BM25_WEIGHT) * g;
            let pair = index.docs[d as usize].pair;
            let e = best.entry(pair).or_insert((0.0, 0.0, 0.0));
            if s > e.0 {
                *e = (s, b, g);
            }
        }
        let mut hits: Vec<Hit> = best
            .into_iter()
            .map(|(pair, (score, bm25, ngram))| Hit {
                pair: pair as usize,
                score,
                bm25,
                ngram,
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.pair.cmp(&b.pair))
        });
        let confidence = match hits.as_slice() {
            [] => 0.0,
            [one] => self.calibration.confidence(one.score, one.score),
            [one, two, ..] => self
                .calibration
                .confidence(one.score, one.score - two.score),
        };
        hits.truncate(k.max(1));
        Search {
            lang: index.lang.clone(),
            hits,
            confidence,
        }
    }

    /// The `k` best pairs for `message` among the packs in `packs` (all when empty). The
    /// message's language is detected; if that language has no pairs or nothing matches, the
    /// other languages are searched and the best result kept.
    pub fn search(&self, packs: &[String], message: &str, k: usize) -> Search {
        let active: Vec<bool> = self
            .packs
            .iter()
            .map(|p| packs.is_empty() || packs.contains(p))
            .collect();
        let message = entities::strip(message);
        let family = Family::of(text::detect(&message));
        let mut order: Vec<&LangIndex> = self.langs.iter().filter(|l| l.family == family).collect();
        order.extend(self.langs.iter().filter(|l| l.family != family));
        let mut fallback: Option<Search> = None;
        for (i, index) in order.iter().enumerate() {
            let s = self.search_lang(index, &active, &message, k);
            let primary = i == 0 && index.family == family;
            if primary && !s.hits.is_empty() {
                return s;
            }
            if fallback
                .as_ref()
                .is_none_or(|f| s.confidence > f.confidence)
            {
                fallback = Some(s);
            }
        }
        fallback.unwrap_or_else(|| Search {
            lang: text::detect(&message).to_owned(),
            ..Search::default()
        })
    }

    /// The intent of `message` (see [`super::BotEngine::understand`]).
    pub fn understand_text(&self, ctx: &BotContext, message: &str) -> Intent {
        let found = self.search(&ctx.packs, message, 3);
        let top = found.hits.first().map(|h| &self.pairs[h.pair]);
        if self.handoff.matches(message) {
            // A pack's own "talk to a person" topic answers better than the generic reply.
            if let Some(p) = top.filter(|p| p.qa.handoff && found.confidence >= ctx.threshold) {
                return Intent {
                    name: p.qa.id.clone(),
                    confidence: found.confidence,
                    entities: entities::extract(message, &p.qa.entities),
                    lang: found.lang,
                    ..Intent::default()
                };
            }
            return Intent::handoff(&found.lang, entities::extract(message, &[]));
        }
        match top {
            Some(p) if found.confidence >= ctx.threshold => Intent {
                name: p.qa.id.clone(),
                confidence: found.confidence,
                entities: entities::extract(message, &p.qa.entities),
                lang: found.lang,
                ..Intent::default()
            },
            _ => Intent {
                name: Intent::UNKNOWN.to_owned(),
                confidence: found.confidence,
                entities: entities::extract(message, &[]),
                lang: found.lang,
                ..Intent::default()
            },
        }
    }

    /// The reply to `intent` (see [`super::BotEngine::respond`]).
    pub fn respond_to(&self, intent: &Intent) -> Response {
        if let Some(answer) = &intent.answer {
            return Response {
                text: entities::fill(answer, &intent.entities),
                quick_replies: Vec::new(),
                handoff: intent.handoff,
            };
        }
        match self.pair(&intent.name, &intent.lang) {
            Some(p) if !intent.handoff => Response {
                text: entities::fill(&p.qa.answer, &intent.entities),
                quick_replies: p.qa.quick_replies.iter().take(3).cloned().collect(),
                handoff: p.qa.handoff,
            },
            _ => Response {
                text: fallback_text(&intent.lang, intent.name == Intent::HANDOFF).to_owned(),
                quick_replies: Vec::new(),
                handoff: true,
            },
        }
    }

    /// Scores details for one message, for tuning (`kefu bot eval --verbose`).
    pub fn explain(&self, packs: &[String], message: &str) -> BTreeMap<String, serde_json::Value> {
        let s = self.search(packs, message, 2);
        let mut m = BTreeMap::new();
        for (i, h) in s.hits.iter().enumerate() {
            m.insert(
                format!("top{}", i + 1),
                serde_json::json!({"id": self.pairs[h.pair].qa.id, "score": h.score,
                    "bm25": h.bm25, "ngram": h.ngram}),
            );
        }
        m
    }
}

/// BM25 of the message's terms against a document made of exactly those terms: the most the
/// message can score, used to normalize.
fn self_score(index: &LangIndex, terms: &[String]) -> f32 {
    let len = terms.len() as f32;
    tf_counts(terms)
        .into_iter()
        .map(|(t, _)| {
            // The ideal document holds each term once and is as long as the message.
            index.idf(t) * (K1 + 1.0) / (1.0 + K1 * (1.0 - B + B * len / index.avgdl))
        })
        .sum()
}
