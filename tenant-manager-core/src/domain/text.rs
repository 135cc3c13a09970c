//! Cutting text to a byte budget without splitting a character: error messages and tool
//! output kept in a column, a stream entry or an error.

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
///
/// ```
/// use tenant_manager_core::truncate_utf8;
/// assert_eq!(truncate_utf8("héllo", 2), "h");
/// assert_eq!(truncate_utf8("héllo", 3), "hé");
/// assert_eq!(truncate_utf8("abc", 10), "abc");
/// ```
pub fn truncate_utf8(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// The longest suffix of `text` of at most `max` bytes that starts on a character boundary:
/// the end of a tool's output, where its error is.
///
/// ```
/// use tenant_manager_core::tail_utf8;
/// assert_eq!(tail_utf8("olléh", 2), "h");
/// assert_eq!(tail_utf8("olléh", 3), "éh");
/// assert_eq!(tail_utf8("abc", 10), "abc");
/// ```
pub fn tail_utf8(text: &str, max: usize) -> &str {
    &text[text.ceil_char_boundary(text.len().saturating_sub(max))..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_never_split_a_character() {
        let text = "aé€😀z";
        for max in 0..=text.len() + 1 {
            let head = truncate_utf8(text, max);
            assert!(
                head.len() <= max && text.starts_with(head),
                "{max}: {head:?}"
            );
            assert!(
                head.len() + 3 >= max.min(text.len()),
                "{max}: too short {head:?}"
            );
            let tail = tail_utf8(text, max);
            assert!(tail.len() <= max && text.ends_with(tail), "{max}: {tail:?}");
            assert!(
                tail.len() + 3 >= max.min(text.len()),
                "{max}: too short {tail:?}"
            );
        }
        assert_eq!(truncate_utf8("", 5), "");
        assert_eq!(tail_utf8("", 5), "");
        assert_eq!(truncate_utf8("😀", 3), "");
        assert_eq!(tail_utf8("😀", 3), "");
    }
}
