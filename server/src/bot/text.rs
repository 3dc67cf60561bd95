//! Text processing for retrieval: language detection, Chinese segmentation (jieba), English
//! tokenization with Snowball stemming, stop words, synonym normalization and character n-grams.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use jieba_rs::Jieba;
use rust_stemmers::{Algorithm, Stemmer};

/// How a language is tokenized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Chinese: jieba words; ASCII runs inside are treated as English words.
    Zh,
    /// English: words, lowercased, stemmed.
    En,
    /// Any other language tag: words, lowercased, no stemming.
    Other,
}

impl Family {
    pub fn of(lang: &str) -> Family {
        let l = lang.to_ascii_lowercase();
        if l == "zh" || l.starts_with("zh-") || l.starts_with("zh_") {
            Family::Zh
        } else if l == "en" || l.starts_with("en-") || l.starts_with("en_") {
            Family::En
        } else {
            Family::Other
        }
    }
}

/// CJK ideographs (and the CJK punctuation block is not counted).
pub fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2A6DF}' | '\u{2A700}'..='\u{2EBEF}')
}

/// The language of a visitor's message: `zh-CN` when it has any Chinese character, else `en`.
pub fn detect(text: &str) -> &'static str {
    if text.chars().any(is_cjk) {
        "zh-CN"
    } else {
        "en"
    }
}

/// The jieba segmenter with its default dictionary, loaded once (a few hundred ms) on first use.
pub fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// English words that carry no topic. Question words and negations are kept on purpose: "where
/// is my order" and "how do I order" are different questions.
const EN_STOP: &[&str] = &[
    "a", "an", "the", "i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "you", "your",
    "yours", "he", "him", "his", "she", "her", "it", "its", "they", "them", "their", "this",
    "that", "these", "those", "am", "is", "are", "was", "were", "be", "been", "being", "do",
    "does", "did", "doing", "have", "has", "had", "having", "would", "should", "could", "might",
    "must", "shall", "will", "to", "of", "in", "on", "at", "by", "for", "with", "about", "from",
    "into", "onto", "as", "and", "or", "but", "so", "if", "then", "than", "too", "very", "just",
    "there", "here", "please", "pls", "plz", "hi", "hello", "hey", "thanks", "thank", "ok", "okay",
    "some", "any", "also", "up", "out", "off", "s", "t", "d", "ll", "m", "re", "ve", "im", "id",
    "ive", "dont", "doesnt", "didnt", "cant", "wont", "isnt", "arent", "wasnt", "u", "ur", "yo",
    "dear", "sir", "madam", "kindly", "really", "still", "already", "get", "got", "want", "wanted",
    "need", "needed", "like", "know", "tell", "let", "lets",
];

/// Chinese function words and pleasantries.
const ZH_STOP: &[&str] = &[
    "的",
    "了",
    "吗",
    "呢",
    "吧",
    "啊",
    "呀",
    "哦",
    "噢",
    "嘛",
    "么",
    "哈",
    "啦",
    "喔",
    "嗯",
    "我",
    "我们",
    "你",
    "你们",
    "您",
    "是",
    "在",
    "请问",
    "请",
    "一下",
    "这个",
    "那个",
    "就",
    "都",
    "也",
    "还",
    "和",
    "与",
    "及",
    "把",
    "被",
    "给",
    "个",
    "下",
    "想",
    "要",
    "能",
    "可以",
    "你好",
    "您好",
    "谢谢",
    "麻烦",
    "问",
    "问下",
    "问一下",
    "帮",
    "帮我",
    "一个",
    "有没有",
    "没有",
    "有",
    "得",
    "地",
    "着",
    "过",
    "之",
    "其",
    "这",
    "那",
    "哪个",
    "那么",
    "这么",
    "会",
    "将",
    "对",
    "啥",
    "呃",
    "额",
    "哎",
    "诶",
    "亲",
];

fn stop_set(family: Family) -> &'static HashSet<&'static str> {
    static EN: OnceLock<HashSet<&'static str>> = OnceLock::new();
    static ZH: OnceLock<HashSet<&'static str>> = OnceLock::new();
    match family {
        Family::Zh => ZH.get_or_init(|| ZH_STOP.iter().chain(EN_STOP).copied().collect()),
        Family::En | Family::Other => EN.get_or_init(|| EN_STOP.iter().copied().collect()),
    }
}

/// A token of a question after segmentation and stemming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    /// A stop word: it takes part in synonym phrases but not in scoring.
    pub stop: bool,
}

fn en_word(word: &str, family: Family, out: &mut Vec<Token>) {
    let lower = word.to_lowercase();
    let lower = lower.replace(['\'', '’'], "");
    if lower.is_empty() {
        return;
    }
    let stop = stop_set(Family::En).contains(lower.as_str());
    let text = if family == Family::Other {
        lower
    } else {
        stemmer().stem(&lower).into_owned()
    };
    out.push(Token { text, stop });
}

/// Splits `text` into words: letters and digits, with inner apostrophes kept.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(|w| w.trim_matches(|c| c == '\'' || c == '’'))
        .filter(|w| !w.is_empty())
}

/// Spelling repair for words the corpus never uses (English and other alphabetic languages;
/// Chinese typos are homophones, which this does not address). A word of at least
/// [`Speller::MIN_CHARS`] letters that no question contains, and that is one edit (a letter
/// inserted, deleted, replaced, or two neighbours swapped) from words that questions do contain,
/// becomes the most frequent of those, unless it is an English word: then only a known word
/// it extends or shortens at the end counts (`snorer` → `snore`). Without it one typo costs a message most of its score:
/// an unknown word carries the highest idf in BM25's normalization and unknown character
/// n-grams in the cosine's. Lookups go through every one-letter deletion of the known words
/// (the SymSpell idea), so a repair costs a handful of hash lookups, not a vocabulary scan.
#[derive(Debug, Default)]
pub struct Speller {
    /// Known words (lowercase) and how many question variants use them.
    counts: HashMap<String, u32>,
    /// A known word, and each of its one-letter deletions → the known words it comes from.
    deletes: HashMap<String, Vec<u32>>,
    words: Vec<String>,
}

impl Speller {
    pub const MIN_CHARS: usize = 3;

    pub fn new<'a>(questions: impl IntoIterator<Item = &'a str>) -> Speller {
        let mut sp = Speller::default();
        for q in questions {
            let mut seen = HashSet::new();
            for w in words(q) {
                let w = w.to_lowercase();
                if seen.insert(w.clone()) {
                    *sp.counts.entry(w).or_insert(0) += 1;
                }
            }
        }
        let mut words: Vec<&String> = sp.counts.keys().filter(|w| Self::eligible(w)).collect();
        words.sort();
        for w in words {
            let i = sp.words.len() as u32;
            sp.words.push(w.clone());
            for d in std::iter::once(w.clone()).chain(deletions(w)) {
                let list = sp.deletes.entry(d).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        sp
    }

    fn eligible(w: &str) -> bool {
        w.chars().count() >= Self::MIN_CHARS && w.chars().all(char::is_alphabetic)
    }

    /// The known word `word` (lowercase) most likely stands for, if it is unknown and one edit
    /// from known ones.
    pub fn repair(&self, word: &str) -> Option<&str> {
        if self.words.is_empty() || !Self::eligible(word) || self.counts.contains_key(word) {
            return None;
        }
        // A real word that no question uses is not a typo ("how many bones in a shark" is not
        // about a bonus to share); it is only read as a known word it inflects (snorer, snore).
        let real = english_words().contains(word);
        let mut best: Option<(u32, &str)> = None;
        for key in std::iter::once(word.to_owned()).chain(deletions(word)) {
            for &i in self.deletes.get(&key).into_iter().flatten() {
                let cand = self.words[i as usize].as_str();
                if !one_edit(word, cand) {
                    continue;
                }
                if real && !(word.starts_with(cand) || cand.starts_with(word)) {
                    continue;
                }
                let n = self.counts[cand];
                if best.is_none_or(|(bn, bw)| n > bn || (n == bn && cand < bw)) {
                    best = Some((n, cand));
                }
            }
        }
        best.map(|(_, w)| w)
    }

    /// `text` with every repairable word replaced by its repair (lowercase); other text as is.
    pub fn fix<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if self.words.is_empty() {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut out = String::new();
        let mut done = 0;
        for w in words(text) {
            let lower = w.to_lowercase();
            if let Some(fixed) = self.repair(&lower) {
                let at = w.as_ptr() as usize - text.as_ptr() as usize;
                out.push_str(&text[done..at]);
                out.push_str(fixed);
                done = at + w.len();
            }
        }
        if done == 0 {
            return std::borrow::Cow::Borrowed(text);
        }
        out.push_str(&text[done..]);
        std::borrow::Cow::Owned(out)
    }
}

/// English words (SCOWL, as Debian's `wamerican` ships it: lowercase, letters only, three or
/// more; licence in `server/data/words.en.LICENSE`), for [`Speller::repair`].
fn english_words() -> &'static HashSet<&'static str> {
    static WORDS: OnceLock<HashSet<&'static str>> = OnceLock::new();
    WORDS.get_or_init(|| include_str!("../../data/words.en.txt").lines().collect())
}

/// `w` with one character removed, at each position.
fn deletions(w: &str) -> impl Iterator<Item = String> + '_ {
    w.char_indices()
        .map(move |(i, c)| format!("{}{}", &w[..i], &w[i + c.len_utf8()..]))
}

/// Whether `a` and `b` differ by exactly one insertion, deletion, substitution or swap of two
/// neighbouring characters.
fn one_edit(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    match long.len() - short.len() {
        0 => {
            let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
            match diff.as_slice() {
                [_] => true,
                [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
                _ => false,
            }
        }
        1 => {
            let p = (0..short.len())
                .find(|&i| short[i] != long[i])
                .unwrap_or(short.len());
            short[p..] == long[p + 1..]
        }
        _ => false,
    }
}

/// The message split at each of its last `max` clause breaks (sentence or clause punctuation,
/// Western or Chinese) into what comes before and what comes after, shortest tail last; only
/// where both parts have at least two words (or two Chinese characters).
pub fn trailing_clauses(text: &str, max: usize) -> Vec<(&str, &str)> {
    let breaks = |c: char| {
        matches!(
            c,
            '.' | '!' | '?' | ';' | ':' | ',' | '。' | '！' | '？' | '；' | '：' | '，' | '\n'
        )
    };
    let enough =
        |part: &str| part.chars().filter(|c| is_cjk(*c)).count() >= 2 || words(part).count() >= 2;
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (i, c) in text.char_indices() {
        if !breaks(c) {
            continue;
        }
        let (head, tail) = (text[..i].trim(), text[i + c.len_utf8()..].trim());
        if enough(head) && enough(tail) {
            out.push((head, tail));
        }
    }
    let skip = out.len().saturating_sub(max);
    out.drain(..skip);
    out
}

/// Chinese written in traditional characters (Hong Kong, Taiwan, overseas), in simplified ones:
/// the corpus is simplified, and a traditional message otherwise shares few words and n-grams
/// with it (0.754 -> 0.633 on the Chinese evaluation questions converted to traditional).
pub fn simplified(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(is_cjk) {
        let s = fast2s::convert(text);
        if s != text {
            return std::borrow::Cow::Owned(s);
        }
    }
    std::borrow::Cow::Borrowed(text)
}

/// Homophone repair for Chinese. Pinyin input methods make typos of the same sound (流程是 typed
/// as 流程市), and one wrong character costs a message two unknown bigrams and often its word:
/// with one character per question swapped for a homophone, accuracy fell from 0.754 to 0.446.
/// A character that forms a bigram no question contains is replaced by the homophone (same
/// toneless pinyin, among the characters the questions use) that makes the most of its two
/// bigrams known, ties going to the more frequent bigrams; if none does better, it stays.
#[derive(Debug, Default)]
pub struct Homophones {
    /// Bigrams of adjacent Chinese characters in the questions, and how often they occur.
    bigrams: HashMap<(char, char), u32>,
    /// Toneless pinyin → the characters the questions use that sound so.
    by_sound: HashMap<&'static str, Vec<char>>,
}

impl Homophones {
    pub fn new<'a>(questions: impl IntoIterator<Item = &'a str>) -> Homophones {
        use pinyin::ToPinyin;
        let mut h = Homophones::default();
        let mut seen = HashSet::new();
        for q in questions {
            let chars: Vec<char> = q.chars().collect();
            for w in chars.windows(2) {
                if is_cjk(w[0]) && is_cjk(w[1]) {
                    *h.bigrams.entry((w[0], w[1])).or_insert(0) += 1;
                }
            }
            for &c in &chars {
                if is_cjk(c)
                    && seen.insert(c)
                    && let Some(p) = c.to_pinyin()
                {
                    h.by_sound.entry(p.plain()).or_default().push(c);
                }
            }
        }
        for list in h.by_sound.values_mut() {
            list.sort_unstable();
        }
        h
    }

    fn count(&self, a: Option<char>, b: Option<char>) -> (u32, u32) {
        match (a, b) {
            (Some(a), Some(b)) if is_cjk(a) && is_cjk(b) => match self.bigrams.get(&(a, b)) {
                Some(&n) => (1, n),
                None => (0, 0),
            },
            _ => (0, 0),
        }
    }

    /// `text` with its likely homophone typos repaired; as is when there are none.
    pub fn fix<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        use pinyin::ToPinyin;
        if self.bigrams.is_empty() || !text.chars().any(is_cjk) {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut chars: Vec<char> = text.chars().collect();
        let mut changed = false;
        for i in 0..chars.len() {
            let c = chars[i];
            if !is_cjk(c) {
                continue;
            }
            let left = i.checked_sub(1).map(|j| chars[j]);
            let right = chars.get(i + 1).copied();
            let score = |x: char| {
                let (k1, n1) = self.count(left, Some(x));
                let (k2, n2) = self.count(Some(x), right);
                (k1 + k2, n1 + n2)
            };
            let here = score(c);
            let both_sides =
                usize::from(left.is_some_and(is_cjk)) + usize::from(right.is_some_and(is_cjk));
            if here.0 as usize == both_sides {
                continue; // every bigram it is part of is known
            }
            let Some(sound) = c.to_pinyin().map(|p| p.plain()) else {
                continue;
            };
            let mut best = (here, c);
            for &x in self.by_sound.get(sound).into_iter().flatten() {
                let s = score(x);
                if s.0 > best.0.0 || (s.0 == best.0.0 && s.0 > here.0 && s.1 > best.0.1) {
                    best = (s, x);
                }
            }
            if best.1 != c {
                chars[i] = best.1;
                changed = true;
            }
        }
        if changed {
            std::borrow::Cow::Owned(chars.into_iter().collect())
        } else {
            std::borrow::Cow::Borrowed(text)
        }
    }
}

/// How one language's messages are mended before scoring: spelling repair ([`Speller`]) for
/// alphabetic languages; for Chinese, traditional characters read as simplified ([`simplified`],
/// always) and homophone repair ([`Homophones`]).
#[derive(Debug)]
pub enum Repair {
    Spelling(Speller),
    Homophones(Homophones),
}

impl Repair {
    /// The repair for `family`, learnt from the questions of its corpus.
    pub fn new<'a>(family: Family, questions: impl IntoIterator<Item = &'a str>) -> Repair {
        match family {
            Family::Zh => Repair::Homophones(Homophones::new(questions)),
            Family::En | Family::Other => {
                // Read while the packs load, not on a visitor's first typo.
                english_words();
                Repair::Spelling(Speller::new(questions))
            }
        }
    }

    /// What is always applied: one way of writing for what can be written two ways.
    pub fn normalize<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        match self {
            Repair::Homophones(_) => simplified(text),
            Repair::Spelling(_) => std::borrow::Cow::Borrowed(text),
        }
    }

    /// `text` with its likely typos repaired (a guess: see `RetrievalEngine::search_lang`).
    pub fn fix<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        match self {
            Repair::Spelling(s) => s.fix(text),
            Repair::Homophones(h) => h.fix(text),
        }
    }
}

/// Tokens of `text`: jieba words for Chinese (and stemmed English words inside it), stemmed
/// lowercase words for English. Punctuation is dropped; stop words are flagged.
pub fn tokenize(family: Family, text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    match family {
        Family::Zh => {
            let stop = stop_set(Family::Zh);
            for t in jieba().cut_for_search(text, false) {
                let w = t.word.trim();
                if w.is_empty() || !w.chars().any(char::is_alphanumeric) {
                    continue;
                }
                if w.chars().any(is_cjk) {
                    out.push(Token {
                        text: w.to_owned(),
                        stop: stop.contains(w),
                    });
                } else {
                    for word in words(w) {
                        en_word(word, Family::En, &mut out);
                    }
                }
            }
        }
        Family::En | Family::Other => {
            for w in words(text) {
                en_word(w, family, &mut out);
            }
        }
    }
    out
}

/// The synonym groups of one pack in one language, ready to normalize token streams: every
/// member of a group becomes the group's canonical token, so any member matches all of them.
#[derive(Debug, Default)]
pub struct Synonyms {
    /// English: member phrases as token sequences, keyed by their first token (longest first
    /// within a key), with their canonical token.
    phrases: HashMap<String, Vec<(Vec<String>, String)>>,
    /// Chinese: one automaton over the members (lowercase), leftmost-longest, and each member's
    /// canonical token by pattern index.
    members: Option<AhoCorasick>,
    member_canon: Vec<String>,
}

impl Synonyms {
    /// `prefix` makes canonical tokens unique across packs (`~<prefix>.<group>`).
    pub fn new(family: Family, groups: &[Vec<String>], prefix: &str) -> Synonyms {
        let mut s = Synonyms::default();
        let mut members: Vec<(String, String)> = Vec::new();
        for (g, group) in groups.iter().enumerate() {
            let canon = format!("~{prefix}.{g}");
            for member in group {
                let member = member.trim().to_lowercase();
                if member.is_empty() {
                    continue;
                }
                if family == Family::Zh && member.chars().any(is_cjk) {
                    members.push((member, canon.clone()));
                } else {
                    let toks = tokenize(family, &member);
                    if !toks.is_empty() && toks.iter().any(|t| !t.stop) {
                        let phrase: Vec<String> = toks.into_iter().map(|t| t.text).collect();
                        s.phrases
                            .entry(phrase[0].clone())
                            .or_default()
                            .push((phrase, canon.clone()));
                    }
                }
            }
        }
        for list in s.phrases.values_mut() {
            list.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        }
        // A member listed in two groups belongs to the first.
        let mut seen = HashSet::new();
        members.retain(|(m, _)| seen.insert(m.clone()));
        if !members.is_empty() {
            s.members = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(members.iter().map(|(m, _)| m))
                .ok();
            s.member_canon = members.into_iter().map(|(_, c)| c).collect();
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty() && self.members.is_none()
    }

    /// Tokens of `text` with synonyms replaced by canonical tokens, stop words removed.
    /// `base` is `tokenize(family, text)`, computed once and shared between packs.
    pub fn terms(&self, family: Family, text: &str, base: &[Token]) -> Vec<String> {
        let replaced;
        let tokens: &[Token] = match &self.members {
            Some(ac) if family == Family::Zh => {
                let lower = text.to_lowercase();
                if ac.is_match(&lower) {
                    replaced = self.segment_with_members(ac, &lower);
                    &replaced
                } else {
                    base
                }
            }
            _ => base,
        };
        let mut out = Vec::with_capacity(tokens.len());
        let mut i = 0;
        'outer: while i < tokens.len() {
            if let Some(candidates) = self.phrases.get(&tokens[i].text) {
                for (phrase, canon) in candidates {
                    let n = phrase.len();
                    if i + n <= tokens.len()
                        && tokens[i..i + n]
                            .iter()
                            .zip(phrase)
                            .all(|(t, p)| &t.text == p)
                    {
                        out.push(canon.clone());
                        i += n;
                        continue 'outer;
                    }
                }
            }
            if !tokens[i].stop {
                out.push(tokens[i].text.clone());
            }
            i += 1;
        }
        out
    }

    /// Chinese: cuts the (lowercase) text around synonym members (leftmost, longest match
    /// first) and segments the pieces between them, so a member is one token whatever jieba
    /// would do in context.
    fn segment_with_members(&self, ac: &AhoCorasick, lower: &str) -> Vec<Token> {
        let mut out = Vec::new();
        let mut piece_start = 0;
        for m in ac.find_iter(lower) {
            out.extend(tokenize(Family::Zh, &lower[piece_start..m.start()]));
            out.push(Token {
                text: self.member_canon[m.pattern().as_usize()].clone(),
                stop: false,
            });
            piece_start = m.end();
        }
        out.extend(tokenize(Family::Zh, &lower[piece_start..]));
        out
    }
}

/// Calls `f` with each character n-gram of `text`, in order (what [`char_ngrams`] collects),
/// from one reused buffer: indexing a corpus meets millions of them, mostly repeats.
pub fn for_each_char_ngram(family: Family, text: &str, mut f: impl FnMut(&str)) {
    let lower = text.to_lowercase();
    let mut gram = String::new();
    let mut emit = |chars: &[char]| {
        gram.clear();
        gram.extend(chars);
        f(&gram);
    };
    match family {
        Family::Zh => {
            let chars: Vec<char> = lower.chars().filter(|c| c.is_alphanumeric()).collect();
            for (i, c) in chars.iter().enumerate() {
                if is_cjk(*c) {
                    emit(&chars[i..=i]);
                }
                if i + 1 < chars.len() {
                    emit(&chars[i..i + 2]);
                }
            }
        }
        Family::En | Family::Other => {
            for w in words(&lower) {
                let padded: Vec<char> = std::iter::once(' ')
                    .chain(w.chars().filter(|c| c.is_alphanumeric()))
                    .chain(std::iter::once(' '))
                    .collect();
                if padded.len() == 3 {
                    emit(&padded);
                    continue;
                }
                for win in padded.windows(3) {
                    emit(win);
                }
            }
        }
    }
}

/// Character n-grams for fuzzy matching: for Chinese the characters and character pairs (short
/// questions and near-synonyms share characters), for other languages the trigrams of each
/// space-padded word (a typo changes few of them). Repeated n-grams are kept.
pub fn char_ngrams(family: Family, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_char_ngram(family, text, |g| out.push(g.to_owned()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_message_at_its_last_clause_breaks() {
        let m = "Hello there, I have a quick question: where is my parcel?";
        assert_eq!(
            trailing_clauses(m, 2),
            vec![
                (
                    "Hello there",
                    "I have a quick question: where is my parcel?"
                ),
                (
                    "Hello there, I have a quick question",
                    "where is my parcel?"
                ),
            ]
        );
        assert_eq!(trailing_clauses(m, 1).len(), 1);
        assert!(
            trailing_clauses("hi, where?", 2).is_empty(),
            "one-word parts"
        );
        assert_eq!(
            trailing_clauses("你好，我想问一下，退款多久到账", 1),
            vec![("你好，我想问一下", "退款多久到账")]
        );
    }

    #[test]
    fn traditional_chinese_reads_as_simplified() {
        assert_eq!(simplified("退貨運費誰出"), "退货运费谁出");
        assert!(matches!(
            simplified("退货运费"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(
            simplified("refund"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn repairs_a_homophone_typo_in_chinese() {
        let h = Homophones::new(["下单流程是什么", "流程是啥", "退款多久到账", "城市配送"]);
        assert_eq!(
            h.fix("流程市啥"),
            "流程是啥",
            "市 (shi) where 是 (shi) was meant"
        );
        assert_eq!(h.fix("推款多久到账"), "退款多久到账");
        assert_eq!(h.fix("城市配送"), "城市配送", "known bigrams stay");
        assert!(matches!(h.fix("退款多久"), std::borrow::Cow::Borrowed(_)));
        assert!(matches!(h.fix("refund"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn repairs_one_typo_into_a_known_word() {
        let sp = Speller::new([
            "Where is my parcel?",
            "Track my parcel please",
            "Can I pay through PayPal?",
            "Can I pay with a parcel locker",
        ]);
        assert_eq!(sp.repair("pracel"), Some("parcel"), "swapped neighbours");
        assert_eq!(sp.repair("parcell"), Some("parcel"), "a letter too many");
        assert_eq!(sp.repair("parel"), Some("parcel"), "a letter missing");
        assert_eq!(sp.repair("parcol"), Some("parcel"), "a letter replaced");
        assert_eq!(sp.repair("thorugh"), Some("through"));
        assert_eq!(sp.repair("parcel"), None, "known words stay");
        assert_eq!(
            sp.repair("mortgage"),
            None,
            "two or more edits from everything"
        );
        assert_eq!(sp.repair("pey"), Some("pay"));
        assert_eq!(sp.repair("py"), None, "two letters are too few to tell");
        assert_eq!(
            sp.fix("Wher is my pracel, sent thorugh the post?"),
            "where is my parcel, sent through the post?"
        );
        assert!(matches!(sp.fix("my parcel"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn real_words_are_not_typos() {
        let sp = Speller::new([
            "Can family members share my Plus membership?",
            "Is there a bonus for members?",
            "My husband's snore keeps me awake",
        ]);
        assert_eq!(sp.repair("shark"), None, "a word, not a typo of share");
        assert_eq!(sp.repair("bones"), None, "a word, not a typo of bonus");
        assert_eq!(sp.repair("snorer"), Some("snore"), "but it may inflect one");
        assert_eq!(
            sp.repair("shaer"),
            Some("share"),
            "typos are still repaired"
        );
        assert_eq!(sp.repair("bnous"), Some("bonus"));
    }

    fn texts(toks: &[Token]) -> Vec<&str> {
        toks.iter()
            .filter(|t| !t.stop)
            .map(|t| t.text.as_str())
            .collect()
    }

    #[test]
    fn detects_language() {
        assert_eq!(detect("我的快递到哪了"), "zh-CN");
        assert_eq!(detect("iPhone 怎么退货"), "zh-CN");
        assert_eq!(detect("Where is my parcel?"), "en");
        assert_eq!(Family::of("zh-CN"), Family::Zh);
        assert_eq!(Family::of("en"), Family::En);
        assert_eq!(Family::of("fr"), Family::Other);
    }

    #[test]
    fn segments_chinese() {
        let toks = tokenize(Family::Zh, "我想申请退款，订单已经签收了");
        let words = texts(&toks);
        for w in ["申请", "退款", "订单", "已经", "签收"] {
            assert!(words.contains(&w), "{w} missing from {words:?}");
        }
        assert!(!words.contains(&"了") && !words.contains(&"我"));
        let mixed = tokenize(Family::Zh, "iPhone怎么退货");
        assert!(texts(&mixed).contains(&"iphon"), "{mixed:?}");
        assert!(texts(&mixed).contains(&"退货"));
    }

    #[test]
    fn tokenizes_and_stems_english() {
        let toks = tokenize(
            Family::En,
            "I'm returning the shoes I ordered, they don't fit!",
        );
        assert_eq!(texts(&toks), ["return", "shoe", "order", "fit"]);
        assert!(toks.iter().any(|t| t.stop && t.text == "the"));
        let toks = tokenize(Family::En, "Where is my delivery?");
        assert_eq!(texts(&toks), ["where", "deliveri"]);
    }

    #[test]
    fn synonyms_normalize_to_one_token() {
        let groups = vec![
            vec![
                "refund".to_owned(),
                "money back".to_owned(),
                "reimbursement".to_owned(),
            ],
            vec!["退款".to_owned(), "退钱".to_owned()],
        ];
        let en = Synonyms::new(Family::En, &groups, "shop");
        let a = "Can I get my money back?";
        let b = "How do I get a refund";
        let ta = en.terms(Family::En, a, &tokenize(Family::En, a));
        let tb = en.terms(Family::En, b, &tokenize(Family::En, b));
        assert!(ta.contains(&"~shop.0".to_owned()), "{ta:?}");
        assert!(tb.contains(&"~shop.0".to_owned()), "{tb:?}");
        assert!(!ta.contains(&"money".to_owned()));
        let zh = Synonyms::new(Family::Zh, &groups, "shop");
        let q = "怎么退钱啊";
        let t = zh.terms(Family::Zh, q, &tokenize(Family::Zh, q));
        assert!(t.contains(&"~shop.1".to_owned()), "{t:?}");
        assert!(t.contains(&"怎么".to_owned()), "{t:?}");
    }

    #[test]
    fn ngrams() {
        assert_eq!(char_ngrams(Family::Zh, "退货?"), ["退", "退货", "货"]);
        assert_eq!(char_ngrams(Family::En, "Hi"), [" hi", "hi "]);
        assert_eq!(char_ngrams(Family::En, "a"), [" a "]);
    }
}
