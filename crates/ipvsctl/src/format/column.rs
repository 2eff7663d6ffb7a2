//! One more column at the end of a text listing (`--names`). Every line is
//! padded to the widest, so the new column lines up and the columns before it
//! keep their bytes.

/// The lines, each padded to the widest, then one space and its cell.
pub(crate) fn append<'a>(lines: impl IntoIterator<Item = (String, &'a str)>) -> Vec<String> {
    let lines: Vec<(String, &str)> = lines.into_iter().collect();
    let width = lines
        .iter()
        .map(|(line, _)| line.chars().count())
        .max()
        .unwrap_or(0);
    lines
        .into_iter()
        .map(|(line, cell)| format!("{line:<width$} {cell}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_starts_after_the_widest_line() {
        let out = append([("ab".to_owned(), "x"), ("abcd  ".to_owned(), "-")]);
        assert_eq!(out, ["ab     x", "abcd   -"]);
        assert!(append(Vec::<(String, &str)>::new()).is_empty());
    }
}
