//! READMEs from chart archives, rendered to HTML that is safe to put in a page: a chart
//! is untrusted input, and its README may carry raw HTML of any kind.

use std::collections::HashSet;

use pulldown_cmark::{Options, Parser, html};

/// Longest README rendered; past it, the text is cut (a README is prose, not data).
const MAX_README: usize = 512 * 1024;

/// Markdown to sanitised HTML: only harmless elements and attributes survive (no
/// scripts, styles, forms, frames, event handlers or `javascript:` URLs), links open
/// with `rel="noopener noreferrer nofollow"`, and images from other hosts are not loaded
/// (the page makes no request the viewer did not ask for): they keep their alt text.
pub fn render(markdown: &str) -> String {
    let markdown = match markdown.char_indices().nth(MAX_README) {
        Some((cut, _)) => &markdown[..cut],
        None => markdown,
    };
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_GFM;
    let mut unsafe_html = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(markdown, options));
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .attribute_filter(|element, attribute, value| {
            let remote = |v: &str| v.contains("//") || v.contains(':');
            match (element, attribute) {
                ("img", "src" | "srcset") if remote(value) => None,
                _ => Some(value.into()),
            }
        })
        .clean(&unsafe_html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn scripts_handlers_and_javascript_urls_do_not_survive() {
        let html = render(concat!(
            "# Title\n\n<script>alert(1)</script>\n\n",
            "[x](javascript:alert(1)) <a href=\"JaVaScRiPt:alert(1)\">y</a>\n\n",
            "<img src=x onerror=\"alert(1)\"> <a href=\"#\" onclick=\"alert(1)\">z</a>\n\n",
            "<iframe src=\"https://example.com\"></iframe><style>body{}</style>",
            "<form action=\"/x\"><input name=a></form>\n"
        ));
        let lower = html.to_lowercase();
        for bad in ["<script", "javascript:", "onerror", "onclick", "<iframe", "<style", "<form", "<input"] {
            assert!(!lower.contains(bad), "{bad} survived in {html}");
        }
        assert!(html.contains("<h1>Title</h1>"), "{html}");
    }

    #[test]
    fn markdown_renders_and_remote_images_are_not_loaded() {
        let html = render(
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n![badge](https://img.shields.io/x.svg) [home](https://example.com)\n",
        );
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("alt=\"badge\"") && !html.contains("shields.io"), "{html}");
        assert!(html.contains("href=\"https://example.com\"") && html.contains("nofollow"), "{html}");
    }
}
