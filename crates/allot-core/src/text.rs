//! Which characters text from outside may hold, on every backend alike.
//!
//! Two kinds: a **reference** (an id, a key, a code, a tracking number, a cursor — text
//! that machines compare) holds no control, format or invisible characters and is not
//! blank; **prose** (names, reasons, notes — text for people) may hold any printable
//! Unicode, including right-to-left marks, but no control characters other than tab and
//! line breaks, and never NUL (PostgreSQL cannot store it, so SQLite must not either, or
//! data could not move between them). What it must never do: normalise or trim — text is
//! accepted as it is or refused with the reason.

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must not be only whitespace")]
    Blank,
    #[error("must be at most {max} characters, got {len}")]
    TooLong { max: usize, len: usize },
    #[error("must not contain control character U+{code:04X} (at character {at})")]
    Control { code: u32, at: usize },
    #[error("must not contain invisible or direction-changing character U+{code:04X} (at character {at})")]
    Invisible { code: u32, at: usize },
}

/// C0 controls, DEL and C1 controls (Unicode category Cc).
pub fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Characters that change how text reads without being seen: zero-width characters,
/// direction marks, embeddings, overrides and isolates, the byte-order mark, line and
/// paragraph separators, soft hyphens, interlinear annotation and tag characters.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

/// Checks that text holds no control or invisible characters (nothing else: it may be
/// empty, blank or long).
pub fn check_visible(raw: &str) -> Result<(), TextError> {
    for (at, c) in raw.chars().enumerate() {
        if is_control(c) {
            return Err(TextError::Control { code: c.into(), at });
        }
        if is_invisible(c) {
            return Err(TextError::Invisible { code: c.into(), at });
        }
    }
    Ok(())
}

/// Checks a reference: 1–`max_chars` characters, not blank, no control or invisible
/// characters.
pub fn check_reference(raw: &str, max_chars: usize) -> Result<(), TextError> {
    if raw.is_empty() {
        return Err(TextError::Empty);
    }
    check_visible(raw)?;
    if raw.chars().all(char::is_whitespace) {
        return Err(TextError::Blank);
    }
    let len = raw.chars().count();
    if len > max_chars {
        return Err(TextError::TooLong { max: max_chars, len });
    }
    Ok(())
}

/// Checks prose: at most `max_chars` characters, no control characters but tab, line feed
/// and carriage return. May be empty (the caller decides whether a field is required).
pub fn check_prose(raw: &str, max_chars: usize) -> Result<(), TextError> {
    let mut len = 0;
    for (at, c) in raw.chars().enumerate() {
        if is_control(c) && !matches!(c, '\t' | '\n' | '\r') {
            return Err(TextError::Control { code: c.into(), at });
        }
        len += 1;
    }
    if len > max_chars {
        return Err(TextError::TooLong { max: max_chars, len });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn references_refuse_what_cannot_be_seen_or_stored() {
        for (raw, expected) in [
            ("", TextError::Empty),
            ("   ", TextError::Blank),
            ("\u{3000}", TextError::Blank),
            ("a\0b", TextError::Control { code: 0, at: 1 }),
            ("\u{7f}", TextError::Control { code: 0x7f, at: 0 }),
            ("x\u{85}", TextError::Control { code: 0x85, at: 1 }),
            ("\tW-1", TextError::Control { code: 9, at: 0 }),
            ("W-1\u{202e}", TextError::Invisible { code: 0x202e, at: 3 }),
            ("W\u{200b}1", TextError::Invisible { code: 0x200b, at: 1 }),
            ("\u{feff}W1", TextError::Invisible { code: 0xfeff, at: 0 }),
            ("W\u{2066}1", TextError::Invisible { code: 0x2066, at: 1 }),
            ("abcd", TextError::TooLong { max: 3, len: 4 }),
        ] {
            assert_eq!(check_reference(raw, 3), Err(expected), "{raw:?}");
        }
        for ok in ["W-100234", "ord_0193", "1Z 999 AA1", "Zoë-Ünïcode", "注文-1"] {
            assert_eq!(check_reference(ok, 64), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn prose_holds_printable_unicode_and_line_breaks_but_never_nul() {
        for ok in ["", "Ada Lovelace", "left at the door\nring twice", "שלום\u{200f}", "a\tb"] {
            assert_eq!(check_prose(ok, 200), Ok(()), "{ok:?}");
        }
        assert_eq!(check_prose("bad\0", 200), Err(TextError::Control { code: 0, at: 3 }));
        assert_eq!(check_prose("\u{1b}[31m", 200), Err(TextError::Control { code: 0x1b, at: 0 }));
        assert_eq!(check_prose("ab", 1), Err(TextError::TooLong { max: 1, len: 2 }));
    }

    proptest! {
        #[test]
        fn an_accepted_reference_holds_no_control_or_invisible_character(raw in "\\PC{0,8}|[\\x00-\\x20\\u{200b}\\u{202e}a]{0,8}") {
            if check_reference(&raw, 64).is_ok() {
                prop_assert!(!raw.chars().any(|c| is_control(c) || is_invisible(c)));
                prop_assert!(!raw.trim().is_empty());
            }
        }

        #[test]
        fn accepted_prose_never_holds_nul(raw in "[\\x00-\\x7f\\u{80}-\\u{9f}é]{0,12}") {
            if check_prose(&raw, 64).is_ok() {
                prop_assert!(!raw.contains('\0'));
            }
        }
    }
}
