//! Chart search: which charts a query matches and in what order. A query is one or more
//! words; a chart matches when every word is found in its name, keywords or description
//! (case-insensitive), and ranks by where: the whole query as the exact name first, then
//! names starting with a word, names holding it, keywords, descriptions.

use crate::RegistryError;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 256;
/// Most words a query is read as; more are ignored.
const MAX_WORDS: usize = 8;

/// A parsed search query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    whole: String,
    words: Vec<String>,
}

/// What a chart offers to search.
#[derive(Debug, Clone, Copy)]
pub struct Searchable<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub keywords: &'a [String],
}

impl Query {
    /// Reads `text`; empty or overlong queries are invalid.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(RegistryError::invalid(format!("q is longer than {MAX_QUERY_BYTES} bytes")));
        }
        let whole = text.trim().to_lowercase();
        let words: Vec<String> = whole.split_whitespace().take(MAX_WORDS).map(str::to_string).collect();
        if words.is_empty() {
            return Err(RegistryError::invalid("q (the words to search for) is required"));
        }
        Ok(Self { whole, words })
    }

    /// The chart's rank for this query (lower is better), or `None` if it does not match.
    pub fn rank(&self, chart: Searchable<'_>) -> Option<u32> {
        let name = chart.name.to_lowercase();
        if name == self.whole {
            return Some(0);
        }
        let description = chart.description.to_lowercase();
        let keywords: Vec<String> = chart.keywords.iter().map(|k| k.to_lowercase()).collect();
        let mut total = 0;
        for word in &self.words {
            let tier = if name == *word {
                1
            } else if name.starts_with(word.as_str()) {
                2
            } else if name.contains(word.as_str()) {
                3
            } else if keywords.iter().any(|k| k == word) {
                4
            } else if keywords.iter().any(|k| k.contains(word.as_str())) {
                5
            } else if description.contains(word.as_str()) {
                6
            } else {
                return None;
            };
            total += tier;
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart<'a>(name: &'a str, description: &'a str, keywords: &'a [String]) -> Searchable<'a> {
        Searchable { name, description, keywords }
    }

    #[test]
    fn exact_names_come_first_then_prefixes_names_keywords_descriptions() {
        let query = Query::parse("Redis").unwrap();
        let keywords = vec!["redis".to_string(), "cache".to_string()];
        let ranks = [
            query.rank(chart("redis", "", &[])),
            query.rank(chart("redis-cluster", "", &[])),
            query.rank(chart("bitnami-redis", "", &[])),
            query.rank(chart("valkey", "", &keywords)),
            query.rank(chart("cachey", "a redis front", &[])),
        ];
        let ranks: Vec<u32> = ranks.into_iter().map(Option::unwrap).collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
        assert_eq!(query.rank(chart("nginx", "a web server", &keywords[1..])), None);
    }

    #[test]
    fn every_word_must_match_somewhere() {
        let query = Query::parse("web server").unwrap();
        assert!(query.rank(chart("nginx", "A web server", &[])).is_some());
        assert!(query.rank(chart("web", "a cache", &[])).is_none());
        assert_eq!(Query::parse("web server").unwrap().rank(chart("web server", "", &[])), Some(0));
    }

    #[test]
    fn empty_and_overlong_queries_are_refused() {
        assert!(Query::parse("  ").is_err());
        assert!(Query::parse(&"x".repeat(MAX_QUERY_BYTES + 1)).is_err());
    }
}
