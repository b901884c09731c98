//! The lowest version an npm dependency range admits. That is all the runtime
//! check needs: a range is safe when even its lowest match is new enough.
//!
//! npm's grammar, not Cargo's (`^0.x` and `1.2` differ): exact (`2.11.0`,
//! `=2.11.0`, `v2.11.0`), `^`, `~` (and `~>`), `>=`, `>`, `<`, `<=`, x-ranges
//! (`2`, `2.x`, `2.11.*`, `*`, empty), hyphen ranges (`2.11.0 - 2.17`),
//! space-separated intersections and `||` unions. Tags, `workspace:`, `npm:`
//! aliases, URLs and paths are refused, so the caller can say "check by hand".

use super::version::Version;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not an npm version range this check reads (it reads exact versions, ^, ~, >=, >, <, <=, \
     x-ranges, hyphen ranges and || of those)"
)]
pub struct UnsupportedRange(pub String);

/// The lowest version `range` admits; `None` when it has no lower bound (`*`, `<3`).
pub fn lowest(range: &str) -> Result<Option<Version>, UnsupportedRange> {
    let unsupported = || UnsupportedRange(range.to_owned());
    let mut lowest: Option<Version> = None;
    for alternative in range.split("||") {
        match lowest_of_intersection(alternative).ok_or_else(unsupported)? {
            // One unbounded alternative makes the whole union unbounded.
            None => return Ok(None),
            Some(bound) => {
                if lowest.as_ref().is_none_or(|l| bound < *l) {
                    lowest = Some(bound);
                }
            }
        }
    }
    Ok(lowest)
}

/// `None` for syntax we do not read; `Some(None)` for "no lower bound".
fn lowest_of_intersection(text: &str) -> Option<Option<Version>> {
    let tokens = join_operators(text);
    if let [from, dash, _to] = tokens.as_slice()
        && dash == "-"
    {
        return Some(partial(from)?.lower());
    }
    let mut lowest: Option<Version> = None;
    for token in &tokens {
        let bound = comparator_lower_bound(token)?;
        // An intersection admits nothing below its highest lower bound.
        if bound
            .as_ref()
            .is_some_and(|b| lowest.as_ref().is_none_or(|l| b > l))
        {
            lowest = bound;
        }
    }
    Some(lowest)
}

/// Splits on whitespace, gluing an operator written apart (`>= 2.11`) to its version.
fn join_operators(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut pending = String::new();
    for word in text.split_whitespace() {
        if matches!(word, "<" | "<=" | ">" | ">=" | "=" | "^" | "~" | "~>") {
            pending.push_str(word);
            continue;
        }
        tokens.push(std::mem::take(&mut pending) + word);
    }
    if !pending.is_empty() {
        tokens.push(pending);
    }
    tokens
}

fn comparator_lower_bound(token: &str) -> Option<Option<Version>> {
    let operators = [">=", "<=", "~>", ">", "<", "=", "^", "~"];
    let (operator, rest) = operators
        .iter()
        .find_map(|op| token.strip_prefix(op).map(|rest| (*op, rest)))
        .unwrap_or(("", token));
    let version = partial(rest)?;
    Some(match operator {
        "<" | "<=" => None,
        // `>2` means `>=3.0.0`, `>2.10` means `>=2.11.0`; `>2.10.1` admits
        // 2.10.2 and up, so 2.10.1 is a safe stand-in for "just above".
        ">" => version.above(),
        _ => version.lower(),
    })
}

/// A version with some parts possibly left out or written as x / X / *.
struct Partial {
    numbers: Vec<u64>,
    pre: Option<String>,
}

impl Partial {
    fn lower(&self) -> Option<Version> {
        let first = *self.numbers.first()?;
        let mut version = Version::new(first, 0, 0);
        version.numbers[..self.numbers.len()].copy_from_slice(&self.numbers);
        version.pre = self.pre.clone();
        Some(version)
    }

    fn above(&self) -> Option<Version> {
        let mut version = self.lower()?;
        if self.numbers.len() < 3 {
            let last = self.numbers.len() - 1;
            version.numbers[last] += 1;
            version.numbers[last + 1..].iter_mut().for_each(|n| *n = 0);
        }
        Some(version)
    }
}

fn partial(text: &str) -> Option<Partial> {
    let text = text.strip_prefix(['v', '=']).unwrap_or(text);
    let text = text.split('+').next().unwrap_or_default();
    let (core, pre) = match text.split_once('-') {
        Some((core, pre)) => (core, Some(pre.to_owned())),
        None => (text, None),
    };
    let mut numbers = Vec::new();
    if !core.is_empty() {
        for part in core.split('.') {
            if matches!(part, "x" | "X" | "*") {
                break;
            }
            numbers.push(part.parse().ok()?);
        }
        if core.split('.').count() > 3 {
            return None;
        }
    }
    Some(Partial { numbers, pre })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn low(range: &str) -> Option<String> {
        lowest(range).unwrap().map(|v| v.to_string())
    }

    #[test]
    fn common_forms() {
        assert_eq!(low("^2.11.0").as_deref(), Some("2.11.0"));
        assert_eq!(low("~2.11.3").as_deref(), Some("2.11.3"));
        assert_eq!(low("2.17.0").as_deref(), Some("2.17.0"));
        assert_eq!(low("=2.17.0").as_deref(), Some("2.17.0"));
        assert_eq!(low("v2.17.0").as_deref(), Some("2.17.0"));
        assert_eq!(low(">=2.11.0").as_deref(), Some("2.11.0"));
        assert_eq!(low(">= 2.11.0 <3").as_deref(), Some("2.11.0"));
        assert_eq!(low("^2.11.0-rc.1").as_deref(), Some("2.11.0-rc.1"));
    }

    #[test]
    fn partial_and_x_ranges() {
        assert_eq!(low("2").as_deref(), Some("2.0.0"));
        assert_eq!(low("2.x").as_deref(), Some("2.0.0"));
        assert_eq!(low("2.11.*").as_deref(), Some("2.11.0"));
        assert_eq!(low("^2").as_deref(), Some("2.0.0"));
        assert_eq!(low(">2").as_deref(), Some("3.0.0"));
        assert_eq!(low(">2.10").as_deref(), Some("2.11.0"));
        assert_eq!(low(">2.10.1").as_deref(), Some("2.10.1"));
        assert_eq!(low("*"), None);
        assert_eq!(low(""), None);
        assert_eq!(low("<3.0.0"), None);
    }

    #[test]
    fn unions_take_the_lowest_alternative_and_hyphens_their_start() {
        assert_eq!(low("^1.10.0 || ^2.11.0").as_deref(), Some("1.10.0"));
        assert_eq!(low("^2.11.0 || *"), None);
        assert_eq!(low("2.5.0 - 2.17.0").as_deref(), Some("2.5.0"));
        assert_eq!(low("2.5 - 3").as_deref(), Some("2.5.0"));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for range in [
            "latest",
            "workspace:^2.11.0",
            "npm:@bufbuild/protobuf@2",
            "file:../protobuf",
            "1.2.3.4",
        ] {
            assert_eq!(
                lowest(range),
                Err(UnsupportedRange(range.to_owned())),
                "{range}"
            );
        }
    }
}
