//! Keyset pages: a store fetches one row more than the page holds, and [`cut`] turns that
//! into the page and the cursor of the next one.

/// Cuts `fetched` (at most `limit + 1` rows, in order) to `limit` rows; the cursor of the next
/// page (`cursor` of the last row kept) when there was a row more, else `None`.
pub fn cut<T, C>(mut fetched: Vec<T>, limit: u32, cursor: impl Fn(&T) -> C) -> (Vec<T>, Option<C>) {
    let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
    if fetched.len() <= wanted {
        return (fetched, None);
    }
    fetched.truncate(wanted);
    let next = fetched.last().map(cursor);
    (fetched, next)
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn a_row_more_than_the_page_gives_the_next_cursor() {
        assert_eq!(cut(vec![1, 2, 3], 2, |n| *n * 10), (vec![1, 2], Some(20)));
        assert_eq!(cut(vec![1, 2], 2, |n| *n * 10), (vec![1, 2], None));
        assert_eq!(cut(Vec::<u8>::new(), 2, |n| *n), (vec![], None));
    }
}
