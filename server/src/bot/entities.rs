//! Entities in a visitor's message (order numbers, phone numbers, emails, dates, amounts) and
//! filling them into answer templates (`{order_no}` …).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

/// The entity kinds answers may use as placeholders.
pub const KINDS: [&str; 5] = ["order_no", "phone", "email", "date", "amount"];

/// One entity found in a message: its kind, its value (as the visitor wrote it, without labels
/// such as `#` or `订单号`) and the byte span of the whole match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: &'static str,
    pub value: String,
    pub start: usize,
    pub end: usize,
}

struct Pattern {
    kind: &'static str,
    re: Regex,
    /// The capture group holding the value (0: the whole match).
    group: usize,
    /// The value must contain a digit (labels like `订单` can be followed by plain words).
    needs_digit: bool,
}

fn pat(kind: &'static str, re: &str, group: usize, needs_digit: bool) -> Pattern {
    Pattern {
        kind,
        re: Regex::new(re).expect("entity pattern compiles"),
        group,
        needs_digit,
    }
}

const MONTHS: &str = "january|jan|february|feb|march|mar|april|apr|may|june|jun|july|jul|\
                      august|aug|september|sept|sep|october|oct|november|nov|december|dec";
const DAYS: &str = "monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekend";

/// Patterns in priority order: an earlier match wins over a later one that overlaps it.
fn patterns() -> &'static [Pattern] {
    static P: OnceLock<Vec<Pattern>> = OnceLock::new();
    P.get_or_init(|| {
        vec![
            pat(
                "email",
                r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
                0,
                false,
            ),
            pat(
                "date",
                r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*[日号]?",
                0,
                false,
            ),
            pat("date", r"\d{1,2}\s*月\s*\d{1,2}\s*[日号]", 0, false),
            pat(
                "date",
                &format!(
                    r"(?i)\b(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}}\b)?"
                ),
                0,
                false,
            ),
            pat(
                "date",
                &format!(
                    r"(?i)\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTHS})\b\.?(?:,?\s+\d{{4}}\b)?"
                ),
                0,
                false,
            ),
            pat(
                "date",
                &format!(
                    r"(?i)\b(?:the\s+day\s+after\s+tomorrow|today|tomorrow|tonight|yesterday|(?:next|this|last)\s+(?:week|month|{DAYS})|(?:on\s+)?(?:{DAYS}))\b"
                ),
                0,
                false,
            ),
            pat(
                "date",
                r"大后天|今天|明天|后天|昨天|前天|今晚|明早|(?:下|这|本|上)(?:个)?(?:周|星期|礼拜)[一二三四五六日天]?|(?:周|星期|礼拜)[一二三四五六日天]|下个?月",
                0,
                false,
            ),
            pat(
                "amount",
                r"(?:[¥￥$€£]|(?i:us\$|rmb|cny|usd|eur)\s?)\s?\d[\d,]*(?:\.\d{1,2})?",
                0,
                false,
            ),
            pat(
                "amount",
                r"(?i)\d[\d,]*(?:\.\d{1,2})?\s?(?:元|块钱|块|美元|人民币|欧元|(?:rmb|cny|usd|dollars?|bucks|euros?)\b)",
                0,
                false,
            ),
            pat(
                "phone",
                r"\+\d{1,3}[\s\-]?(?:\(\d{1,4}\)[\s\-]?)?\d{1,4}(?:[\s\-]?\d{2,4}){1,4}",
                0,
                false,
            ),
            pat("phone", r"(?:^|\D)(1[3-9]\d{9})(?:$|\D)", 1, false),
            pat("phone", r"(?:^|\D)(\(?\d{3}\)?[\s.\-]\d{3}[\s.\-]\d{4})(?:$|\D)", 1, false),
            pat("phone", r"(?:^|\D)(0\d{2,3}-\d{7,8}|400[\-\s]?\d{3}[\-\s]?\d{4})(?:$|\D)", 1, false),
            pat("order_no", r"#\s?([A-Za-z0-9][A-Za-z0-9\-]{2,})", 1, true),
            pat(
                "order_no",
                r"(?i)(?:订单号码|订单编号|订单号|订单|单号|运单号|快递单号|order\s*(?:number|num|no\.?|id|#)?|tracking\s*(?:number|no\.?|id)?)\s*(?:是|为|:|：|#|is)?\s*([A-Za-z0-9][A-Za-z0-9\-]{3,})",
                1,
                true,
            ),
        ]
    })
}

/// A bare code that is an order number only when the topic expects one.
fn bare_order() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(r"(?:^|[^A-Za-z0-9])([A-Za-z]{0,4}\d{5,}[A-Za-z0-9]*)(?:$|[^A-Za-z0-9])")
            .expect("bare order pattern compiles")
    })
}

fn overlaps(found: &[Found], start: usize, end: usize) -> bool {
    found.iter().any(|f| start < f.end && f.start < end)
}

/// Every entity in `text`, without overlaps, in text order. `bare_order_numbers`: also take a
/// bare code of five or more digits (e.g. `202611270001`) as an order number.
pub fn find_all(text: &str, bare_order_numbers: bool) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    for p in patterns() {
        for caps in p.re.captures_iter(text) {
            let (Some(whole), Some(value)) = (caps.get(0), caps.get(p.group)) else {
                continue;
            };
            let v = value.as_str().trim();
            if p.needs_digit && !v.chars().any(|c| c.is_ascii_digit()) {
                continue;
            }
            // The span to remove when scoring: the value and its `#`, not the label words.
            let start = if p.group == 0 || p.kind != "order_no" {
                value.start()
            } else {
                text[..value.start()]
                    .trim_end()
                    .strip_suffix('#')
                    .map_or(value.start(), str::len)
                    .max(whole.start())
            };
            if overlaps(&found, start, value.end()) {
                continue;
            }
            found.push(Found {
                kind: p.kind,
                value: v.to_owned(),
                start,
                end: value.end(),
            });
        }
    }
    if bare_order_numbers {
        for caps in bare_order().captures_iter(text) {
            if let Some(m) = caps.get(1)
                && !overlaps(&found, m.start(), m.end())
            {
                found.push(Found {
                    kind: "order_no",
                    value: m.as_str().to_owned(),
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
    }
    found.sort_by_key(|f| f.start);
    found
}

/// The first entity of each kind. `wanted` is the topic's entity list: when it names
/// `order_no`, a bare long number counts as one too.
pub fn extract(text: &str, wanted: &[String]) -> BTreeMap<String, String> {
    let bare = wanted.iter().any(|w| w == "order_no");
    let mut out = BTreeMap::new();
    for f in find_all(text, bare) {
        out.entry(f.kind.to_owned()).or_insert(f.value);
    }
    out
}

/// `text` without its opaque entities (codes, numbers, addresses), so that a question with an
/// order number scores like the same question without one. Words such as "tomorrow" stay.
pub fn strip(text: &str) -> std::borrow::Cow<'_, str> {
    // Only entities with a digit or an `@` are stripped: most text has neither.
    if !text.bytes().any(|b| b.is_ascii_digit() || b == b'@') {
        return std::borrow::Cow::Borrowed(text);
    }
    let found: Vec<Found> = find_all(text, true)
        .into_iter()
        .filter(|f| f.value.chars().any(|c| c.is_ascii_digit() || c == '@'))
        .collect();
    if found.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in found {
        out.push_str(&text[at..f.start]);
        out.push(' ');
        at = f.end;
    }
    out.push_str(&text[at..]);
    std::borrow::Cow::Owned(out)
}

fn placeholder() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"#?\{([A-Za-z_][A-Za-z0-9_]*)\}").expect("compiles"))
}

/// The entity kinds `answer` has placeholders for, in [`KINDS`] order.
pub fn used_by(answer: &str) -> Vec<String> {
    let named: Vec<&str> = placeholder()
        .captures_iter(answer)
        .filter_map(|c| c.get(1).map(|m| m.as_str()))
        .collect();
    KINDS
        .iter()
        .filter(|k| named.contains(k))
        .map(|k| (*k).to_owned())
        .collect()
}

/// Fills `{kind}` placeholders with the entities found; removes the others with their braces
/// (and a `#` before them), then tidies what that leaves: empty brackets or quotes, doubled
/// spaces, a space or colon before punctuation.
pub fn fill(template: &str, entities: &BTreeMap<String, String>) -> String {
    let mut removed = false;
    let filled = placeholder().replace_all(template, |c: &regex::Captures<'_>| {
        let whole = &c[0];
        match entities.get(&c[1]) {
            Some(v) if whole.starts_with('#') => format!("#{v}"),
            Some(v) => v.clone(),
            None => {
                removed = true;
                String::new()
            }
        }
    });
    if !removed {
        return filled.into_owned();
    }
    static TIDY: OnceLock<[(Regex, &'static str); 5]> = OnceLock::new();
    let tidy = TIDY.get_or_init(|| {
        [
            (
                Regex::new(r#"\(\s*\)|（\s*）|\[\s*\]|【\s*】|“\s*”|「\s*」|"\s*""#).expect("re"),
                "",
            ),
            (Regex::new(r"[ \t]{2,}").expect("re"), " "),
            (
                Regex::new(r"[ \t]+([,.;:!?，。；：！？、)）])").expect("re"),
                "$1",
            ),
            (
                Regex::new(r"[:：]\s*([,.;!?，。；！？]|$)").expect("re"),
                "$1",
            ),
            (Regex::new(r"(?m)^[ \t]+|[ \t]+$").expect("re"), ""),
        ]
    });
    let mut s = filled.into_owned();
    for (re, with) in tidy {
        s = re.replace_all(&s, *with).into_owned();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(text: &str, wanted: &[&str]) -> BTreeMap<String, String> {
        let wanted: Vec<String> = wanted.iter().map(|s| (*s).to_owned()).collect();
        extract(text, &wanted)
    }

    #[test]
    fn order_numbers() {
        assert_eq!(get("Where is my order #A1024?", &[])["order_no"], "A1024");
        assert_eq!(
            get("订单号 202611270001 还没发货", &[])["order_no"],
            "202611270001"
        );
        assert_eq!(
            get("订单号：DD20261127 怎么还没到", &[])["order_no"],
            "DD20261127"
        );
        assert_eq!(
            get("order number 55512345, status?", &[])["order_no"],
            "55512345"
        );
        // A bare number is an order number only for topics that expect one.
        assert!(!get("202611270001 still not here", &[]).contains_key("order_no"));
        assert_eq!(
            get("202611270001 still not here", &["order_no"])["order_no"],
            "202611270001"
        );
        // Labels without a code are not entities.
        assert!(!get("what is the order status", &[]).contains_key("order_no"));
    }

    #[test]
    fn phones_and_emails() {
        let e = get(
            "call me at 13800138000 or mail li.lei@example.com",
            &["order_no"],
        );
        assert_eq!(e["phone"], "13800138000");
        assert_eq!(e["email"], "li.lei@example.com");
        assert!(
            !e.contains_key("order_no"),
            "a mobile number is not an order: {e:?}"
        );
        assert_eq!(
            get("my number is +1 415 555 0100", &[])["phone"],
            "+1 415 555 0100"
        );
        assert_eq!(
            get("call (415) 555-0100 please", &[])["phone"],
            "(415) 555-0100"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(get("deliver on 2026-11-27", &[])["date"], "2026-11-27");
        assert_eq!(get("我想预约11月27日的门诊", &[])["date"], "11月27日");
        assert_eq!(get("can it arrive tomorrow?", &[])["date"], "tomorrow");
        assert_eq!(get("明天能到吗", &[])["date"], "明天");
        assert_eq!(get("booked for Nov 27, 2026", &[])["date"], "Nov 27, 2026");
        assert_eq!(
            get("from 27th of November", &[])["date"],
            "27th of November"
        );
        assert!(!get("May I ask something", &[]).contains_key("date"));
    }

    #[test]
    fn amounts() {
        assert_eq!(get("I paid ¥99.50 for it", &[])["amount"], "¥99.50");
        assert_eq!(get("refund $20 please", &[])["amount"], "$20");
        assert_eq!(get("退我50元", &[])["amount"], "50元");
        assert_eq!(get("charged 1,299 dollars", &[])["amount"], "1,299 dollars");
    }

    #[test]
    fn strips_codes_for_scoring() {
        assert_eq!(
            strip("where is order #A1024?").trim_end_matches('?').trim(),
            "where is order"
        );
        assert_eq!(strip("明天能到吗"), "明天能到吗");
    }

    #[test]
    fn fills_placeholders() {
        let mut e = BTreeMap::new();
        e.insert("order_no".to_owned(), "A1024".to_owned());
        assert_eq!(
            fill("Order {order_no} ships on {date}.", &e),
            "Order A1024 ships on."
        );
        assert_eq!(
            fill("Order #{order_no} is on its way.", &e),
            "Order #A1024 is on its way."
        );
        let none = BTreeMap::new();
        assert_eq!(
            fill("Your order {order_no} has shipped.", &none),
            "Your order has shipped."
        );
        assert_eq!(
            fill("Order #{order_no} is late ({date}).", &none),
            "Order is late."
        );
        assert_eq!(
            fill("您的订单（{order_no}）已发货。", &none),
            "您的订单已发货。"
        );
        assert_eq!(
            fill("订单号：{order_no}。我们会联系您", &none),
            "订单号。我们会联系您"
        );
        assert_eq!(
            fill("No placeholders  here.", &none),
            "No placeholders  here."
        );
    }
}
