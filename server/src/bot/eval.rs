//! `kefu bot ask | eval | stats`: the bot from the command line, without a server or database.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use serde::Deserialize;

use super::retrieval::{Pair, Tuning};
use super::{Bot, BotContext, BotEngine, BotSettings, HandoffWords, Intent, RetrievalEngine};
use crate::cli::{BotAction, CorpusArgs};

/// One line of an evaluation file.
#[derive(Debug, Deserialize)]
pub struct EvalCase {
    pub question: String,
    /// A pair id, or `handoff` for a question no pack answers.
    pub expect: String,
}

/// The figures `kefu bot eval` ends with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub questions: usize,
    pub in_scope: usize,
    pub out_of_scope: usize,
    /// Top-1 accuracy over in-scope questions (right pair, above the threshold).
    pub accuracy: f64,
    /// Share of out-of-scope questions handed to a person.
    pub handoff_accuracy: f64,
    /// 99th percentile of understand + respond, in milliseconds.
    pub p99_ms: f64,
}

impl Summary {
    fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(out, "questions: {}", self.questions)?;
        writeln!(out, "in_scope: {}", self.in_scope)?;
        writeln!(out, "out_of_scope: {}", self.out_of_scope)?;
        writeln!(out, "accuracy: {:.3}", self.accuracy)?;
        writeln!(out, "handoff_accuracy: {:.3}", self.handoff_accuracy)?;
        writeln!(out, "p99_ms: {:.3}", self.p99_ms)
    }
}

/// Reads a JSONL evaluation file (blank lines skipped).
pub fn read_cases(path: &Path) -> anyhow::Result<Vec<EvalCase>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut cases = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        cases.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not an eval line", path.display(), n + 1))?,
        );
    }
    Ok(cases)
}

fn handed_over(intent: &Intent) -> bool {
    intent.name == Intent::HANDOFF || intent.name == Intent::UNKNOWN
}

fn ratio(ok: usize, of: usize) -> f64 {
    if of == 0 { 0.0 } else { ok as f64 / of as f64 }
}

/// Runs `cases` through `engine`, printing one JSON line per case, and returns the figures.
/// `explain`: add the retrieval scores of the two best pairs to each line.
pub async fn evaluate(
    engine: &dyn BotEngine,
    ctx: &BotContext,
    cases: &[EvalCase],
    explain: Option<&RetrievalEngine>,
    out: &mut impl Write,
) -> anyhow::Result<Summary> {
    let mut times = Vec::with_capacity(cases.len());
    let (mut in_scope, mut in_ok, mut out_scope, mut out_ok) = (0, 0, 0, 0);
    for case in cases {
        let start = Instant::now();
        let intent = engine.understand(ctx, &case.question).await;
        let response = engine.respond(ctx, &intent).await;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(&response);
        let ok = if case.expect == Intent::HANDOFF {
            out_scope += 1;
            handed_over(&intent)
        } else {
            in_scope += 1;
            intent.name == case.expect
        };
        if ok {
            if case.expect == Intent::HANDOFF {
                out_ok += 1;
            } else {
                in_ok += 1;
            }
        }
        let mut line = serde_json::json!({
            "question": case.question,
            "expect": case.expect,
            "intent": intent.name,
            "confidence": (f64::from(intent.confidence) * 1000.0).round() / 1000.0,
            "ok": ok,
        });
        if let Some(r) = explain {
            for (k, v) in r.explain(&ctx.packs, &case.question) {
                line[k] = v;
            }
        }
        writeln!(out, "{line}")?;
    }
    times.sort_by(f64::total_cmp);
    let p99 = if times.is_empty() {
        0.0
    } else {
        let rank = ((times.len() as f64) * 0.99).ceil() as usize;
        times[rank.clamp(1, times.len()) - 1]
    };
    Ok(Summary {
        questions: cases.len(),
        in_scope,
        out_of_scope: out_scope,
        accuracy: ratio(in_ok, in_scope),
        handoff_accuracy: ratio(out_ok, out_scope),
        p99_ms: (p99 * 1000.0).round() / 1000.0,
    })
}

/// `kefu bot stats`: what the loaded packs hold.
pub fn stats(engine: &RetrievalEngine, out: &mut impl Write) -> std::io::Result<()> {
    // Decline examples are not answers: counted apart.
    let (declines, answers): (Vec<_>, Vec<_>) = engine.pairs().iter().partition(|p| p.qa.decline);
    let questions = |pairs: &[&Pair]| pairs.iter().map(|p| p.qa.questions.len()).sum::<usize>();
    let topics: BTreeSet<&str> = answers.iter().map(|p| p.qa.id.as_str()).collect();
    writeln!(out, "packs: {}", engine.packs().len())?;
    writeln!(out, "qa_pairs: {}", answers.len())?;
    writeln!(out, "questions: {}", questions(&answers))?;
    writeln!(out, "topics: {}", topics.len())?;
    writeln!(out, "decline_pairs: {}", declines.len())?;
    writeln!(out, "decline_questions: {}", questions(&declines))?;
    writeln!(out, "languages: {}", engine.languages().join(", "))?;
    for (i, name) in engine.packs().iter().enumerate() {
        let mut per_lang: Vec<String> = Vec::new();
        for lang in engine.languages() {
            let n = answers
                .iter()
                .filter(|p| p.pack == i && p.lang == lang)
                .count();
            per_lang.push(format!("{lang}={n}"));
        }
        writeln!(out, "pack {name}: {}", per_lang.join(" "))?;
    }
    Ok(())
}

fn settings_with(base: &BotSettings, args: &CorpusArgs) -> BotSettings {
    let mut s = base.clone();
    if let Some(dir) = &args.corpus {
        s.corpus = Some(dir.clone());
    }
    if !args.packs.is_empty() {
        s.packs = args.packs.clone();
    }
    if let Some(t) = args.threshold {
        s.threshold = t;
    }
    s
}

/// Runs one `kefu bot …` command, printing to stdout.
pub async fn run(base: &BotSettings, action: BotAction) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match action {
        BotAction::Ask { corpus, question } => {
            let settings = settings_with(base, &corpus);
            let engine = Bot::from_settings(&settings)?;
            let ctx = BotContext::new(&settings);
            let intent = engine.understand(&ctx, &question).await;
            let response = engine.respond(&ctx, &intent).await;
            let mut line = serde_json::json!({
                "intent": intent.name,
                "confidence": (f64::from(intent.confidence) * 1000.0).round() / 1000.0,
                "entities": intent.entities,
                "answer": response.text,
                "quick_replies": response.quick_replies,
                "handoff": response.handoff,
            });
            if intent.declined {
                // Like an example of what is not answered (a `decline` pair).
                line["declined"] = true.into();
            }
            writeln!(out, "{line}")?;
        }
        BotAction::Eval {
            corpus,
            verbose,
            tune,
            files,
        } => {
            let settings = settings_with(base, &corpus);
            let mut retrieval = Bot::retrieval(&settings)?;
            if let Some(t) = tune {
                let tuning: Tuning = serde_json::from_str(&t).context("--tune")?;
                retrieval = Arc::new(
                    RetrievalEngine::with_handoff_words(
                        Bot::load_packs(&settings)?,
                        HandoffWords::new(&settings.handoff_words),
                    )
                    .with_tuning(tuning),
                );
            }
            let engine = match settings.engine {
                super::EngineKind::Retrieval => retrieval.clone() as Arc<dyn BotEngine>,
                _ => Bot::from_settings(&settings)?,
            };
            let ctx = BotContext::new(&settings);
            let mut all = Vec::new();
            for file in &files {
                let cases = read_cases(file)?;
                // Per-file figures go to stderr, so stdout stays one line per question.
                let s = evaluate(engine.as_ref(), &ctx, &cases, None, &mut std::io::sink()).await?;
                eprintln!(
                    "{}: questions {} accuracy {:.3} handoff_accuracy {:.3}",
                    display(file),
                    s.questions,
                    s.accuracy,
                    s.handoff_accuracy
                );
                all.extend(cases);
            }
            let explain = verbose.then_some(retrieval.as_ref());
            let summary = evaluate(engine.as_ref(), &ctx, &all, explain, &mut out).await?;
            summary.write(&mut out)?;
        }
        BotAction::Stats { corpus } => {
            let settings = settings_with(base, &corpus);
            let engine = Bot::retrieval(&settings)?;
            stats(&engine, &mut out)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
