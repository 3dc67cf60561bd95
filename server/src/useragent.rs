//! Just enough User-Agent reading to tell an agent "Chrome 131 on Windows".

/// `(browser, os)` as short human labels.
pub fn describe(ua: &str) -> (Option<String>, Option<String>) {
    (browser(ua), os(ua))
}

fn version_after(ua: &str, token: &str) -> Option<String> {
    let start = ua.find(token)? + token.len();
    let v: String = ua[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let major = v.split('.').next().unwrap_or("").to_owned();
    (!major.is_empty()).then_some(major)
}

fn browser(ua: &str) -> Option<String> {
    // Order matters: Edge and Opera also say Chrome; Chrome also says Safari.
    let known: [(&str, &str); 8] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("MicroMessenger/", "WeChat"),
        ("Firefox/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
    ];
    for (token, name) in known {
        if ua.contains(token) {
            return Some(match version_after(ua, token) {
                Some(v) => format!("{name} {v}"),
                None => name.to_owned(),
            });
        }
    }
    (!ua.is_empty()).then(|| ua.chars().take(40).collect())
}

fn os(ua: &str) -> Option<String> {
    let name = if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("Mac OS X") {
        "macOS"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        return None;
    };
    Some(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_browsers() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(
            describe(chrome),
            (Some("Chrome 131".into()), Some("Windows".into()))
        );
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(
            describe(safari),
            (Some("Safari 17".into()), Some("iOS".into()))
        );
        let edge = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
        assert_eq!(
            describe(edge),
            (Some("Edge 131".into()), Some("macOS".into()))
        );
        assert_eq!(describe(""), (None, None));
    }
}
