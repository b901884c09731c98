//! Release versions as the three ecosystems write them (Go `v1.36.11`, PyPI
//! `5.29.6`, npm `2.11.0`), reduced to what the runtime checks need: an order.

use std::cmp::Ordering;
use std::fmt;

/// `major.minor.patch` plus an optional pre-release tag (which sorts before
/// the release, as in semver and PEP 440).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub numbers: [u64; 3],
    pub pre: Option<String>,
}

impl Version {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            numbers: [major, minor, patch],
            pre: None,
        }
    }

    pub fn major(&self) -> u64 {
        self.numbers[0]
    }

    /// Parses `1.36.11`, `v1.36.11`, `2.11`, `5.29.0rc1`, `2.0.0-rc.1+build`.
    /// Missing minor or patch read as 0. `None` when there is no leading number.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_start_matches(['v', 'V', '=']);
        let text = text.split('+').next().unwrap_or_default();
        let mut numbers = [0u64; 3];
        let mut rest = text;
        for (index, slot) in numbers.iter_mut().enumerate() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                if index == 0 {
                    return None;
                }
                break;
            }
            *slot = rest[..digits].parse().ok()?;
            rest = &rest[digits..];
            match rest.strip_prefix('.') {
                Some(after) if after.starts_with(|c: char| c.is_ascii_digit()) => rest = after,
                _ => break,
            }
        }
        // PEP 440 post-releases (`.post1`) are the release itself for our purposes.
        let tag = rest.trim_start_matches(['-', '.', '_']);
        let pre = (!tag.is_empty() && !tag.starts_with("post")).then(|| tag.to_owned());
        Some(Self { numbers, pre })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.numbers
            .cmp(&other.numbers)
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => compare_pre(a, b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Semver's pre-release order: dot-separated identifiers, numbers numerically
/// and before words.
fn compare_pre(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [major, minor, patch] = self.numbers;
        write!(f, "{major}.{minor}.{patch}")?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    #[test]
    fn parses_each_ecosystem_spelling() {
        assert_eq!(v("v1.36.11"), Version::new(1, 36, 11));
        assert_eq!(v("5.29.6"), Version::new(5, 29, 6));
        assert_eq!(v("2.11"), Version::new(2, 11, 0));
        assert_eq!(v("7"), Version::new(7, 0, 0));
        assert_eq!(v("6.31.1.post1"), Version::new(6, 31, 1));
        assert_eq!(v("5.29.0rc1").pre.as_deref(), Some("rc1"));
        assert_eq!(v("2.0.0-rc.1+build.5").pre.as_deref(), Some("rc.1"));
        assert_eq!(Version::parse("latest"), None);
    }

    #[test]
    fn orders_numerically_with_pre_releases_first() {
        assert!(v("1.36.11") > v("1.36.9"));
        assert!(v("v1.34.2") < v("1.36.11"));
        assert!(v("2.11.0-rc.1") < v("2.11.0"));
        assert!(v("2.11.0-rc.2") < v("2.11.0-rc.10"));
        assert!(v("5.29.0rc1") < v("5.29.0"));
        assert_eq!(v("v2.11").cmp(&v("2.11.0")), Ordering::Equal);
    }
}
