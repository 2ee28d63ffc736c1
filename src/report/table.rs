//! Tables that fit the terminal: when the widest row would wrap, the least useful columns are
//! left out (as cargo and uv fit theirs), in an order each table gives. Piped output (no
//! terminal, no `COLUMNS`) keeps every column: scripts read it (or use `--output json`).

/// The width to fit: `COLUMNS` when set, else the terminal's width when stdout is one.
pub fn width() -> Option<usize> {
    if let Some(cols) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
    {
        return Some(cols);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return None;
    }
    console::Term::stdout()
        .size_checked()
        .map(|(_, cols)| cols as usize)
}

/// The width progress lines on stderr fit: `COLUMNS` when set, else the terminal's width when
/// stderr is one; None (lines left whole) when stderr is piped.
pub fn stderr_width() -> Option<usize> {
    if let Some(cols) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
    {
        return Some(cols);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    console::Term::stderr()
        .size_checked()
        .map(|(_, cols)| cols as usize)
}

/// A progress message cut so that each of its lines, after a prefix of `prefix` characters,
/// fits in `width` (None: as it is). A line cut ends in `…`.
pub fn fit(message: &str, prefix: usize, width: Option<usize>) -> String {
    let Some(width) = width else {
        return message.to_string();
    };
    let room = width.saturating_sub(prefix);
    message
        .split('\n')
        .map(|l| shorten(l, room))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which columns to keep so that a line of the given column widths (joined by two spaces)
/// fits in `width`: columns are dropped in `drop_order` (least useful first) until it fits or
/// nothing droppable is left.
pub fn keep(widths: &[usize], drop_order: &[usize], width: Option<usize>) -> Vec<bool> {
    let mut keep = vec![true; widths.len()];
    let Some(width) = width else {
        return keep;
    };
    let total = |keep: &[bool]| {
        let kept: Vec<usize> = widths
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(w, _)| *w)
            .collect();
        kept.iter().sum::<usize>() + 2 * kept.len().saturating_sub(1)
    };
    for &col in drop_order {
        if total(&keep) <= width {
            break;
        }
        if col < keep.len() {
            keep[col] = false;
        }
    }
    keep
}

/// The widest cell of each column (header included).
pub fn widths(rows: &[Vec<String>]) -> Vec<usize> {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// `text` cut to `max` characters, ending in `…` when cut (left whole when `max` is too small
/// to say anything).
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max || max < 12 {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// `rows` without the columns `keep` leaves out.
pub fn project(rows: Vec<Vec<String>>, keep: &[bool]) -> Vec<Vec<String>> {
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .zip(keep.iter().chain(std::iter::repeat(&true)))
                .filter(|(_, k)| **k)
                .map(|(c, _)| c)
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_dropped_in_order_until_the_line_fits() {
        let w = [4, 10, 20, 6, 8];
        // 4+10+20+6+8 + 2*4 = 56
        assert_eq!(keep(&w, &[3, 4], Some(56)), vec![true; 5]);
        assert_eq!(keep(&w, &[3, 4], Some(55)), [true, true, true, false, true]);
        assert_eq!(
            keep(&w, &[3, 4], Some(40)),
            [true, true, true, false, false]
        );
        // Nothing more to drop: it stays as it is (and wraps).
        assert_eq!(
            keep(&w, &[3, 4], Some(10)),
            [true, true, true, false, false]
        );
        assert_eq!(keep(&w, &[3, 4], None), vec![true; 5]);
    }

    #[test]
    fn shorten_cuts_with_an_ellipsis() {
        assert_eq!(
            shorten("listening on /run/user/1009/app.sock", 20),
            "listening on /run/u…"
        );
        assert_eq!(shorten("short", 20), "short");
        assert_eq!(shorten("a long note here", 5), "a long note here");
    }

    #[test]
    fn project_leaves_out_the_dropped_columns() {
        let rows = vec![vec!["a".into(), "b".into(), "c".into()]];
        assert_eq!(project(rows, &[true, false, true]), vec![vec!["a", "c"]]);
    }

    #[test]
    fn progress_lines_fit_the_width_and_piped_ones_stay_whole() {
        let msg = "app: switching to 20261203T145549Z-4e9f962e: installing units, switching `current`, restarting";
        let cut = fit(msg, "web: ".len(), Some(80));
        assert_eq!(cut.chars().count(), 75, "{cut}");
        assert!(
            cut.ends_with('…') && cut.starts_with("app: switching to 2026"),
            "{cut}"
        );
        assert_eq!(fit(msg, 5, None), msg);
        assert_eq!(fit("app: ok", 5, Some(80)), "app: ok");
        // Each line of a message is fitted on its own.
        let two = format!("{msg}\nshort");
        let cut = fit(&two, 0, Some(40));
        let lines: Vec<&str> = cut.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].chars().count(), 40);
        assert_eq!(lines[1], "short");
        // Too narrow to say anything: left whole rather than cut to nothing.
        assert_eq!(fit(msg, 5, Some(10)), msg);
    }
}
