//! The duration grammar of every option that takes one: a number and a
//! unit (`500ms`, `5s`, `1.5s`, `1m`, `1h30m`), as the `humantime` crate
//! reads it.

use std::time::Duration;

/// Parses a duration like `500ms`, `5s`, `1.5s`, `1m` or `1h30m`; the
/// error quotes the text and says what was expected.
///
/// ```
/// use std::time::Duration;
/// use fastnet_cli::duration::parse;
///
/// assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
/// assert!(parse("5 parsecs").unwrap_err().contains("not a duration"));
/// ```
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 500ms, 5s or 1m ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_forms() {
        for (text, want) in [
            ("500ms", Duration::from_millis(500)),
            ("0ms", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("30s", Duration::from_secs(30)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m", Duration::from_secs(60)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("1h 30m", Duration::from_secs(5400)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn errors_quote_the_text() {
        for text in ["", "5", "5 parsecs", "s", "-1s", "1.5.1s"] {
            let e = parse(text).unwrap_err();
            assert!(
                e.starts_with(&format!("{text:?} is not a duration")),
                "{text}: {e}"
            );
        }
    }
}
