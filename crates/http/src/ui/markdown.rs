//! READMEs from chart archives, rendered to HTML that is safe to put in a page: a chart
//! is untrusted input, and its README may carry raw HTML of any kind.

use std::collections::HashSet;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, html};

/// Longest README rendered; past it, the text is cut (a README is prose, not data).
const MAX_README: usize = 512 * 1024;

/// Markdown to sanitised HTML: only harmless elements and attributes survive (no
/// scripts, styles, forms, frames, event handlers or `javascript:` URLs), and links open
/// with `rel="noopener noreferrer nofollow"`. Images become their alt text: those on other
/// hosts would be requests the viewer did not ask for (and tell those hosts who reads
/// what), and paths inside the chart's repository do not exist here.
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
    // An image's alt text comes as the events between its start and end.
    let events = Parser::new_ext(markdown, options)
        .filter(|event| !matches!(event, Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image)));
    html::push_html(&mut unsafe_html, events);
    ammonia::Builder::default()
        .rm_tags(["img"])
        // Code blocks and tables scroll sideways; keyboard users must be able to reach them.
        .set_tag_attribute_value("pre", "tabindex", "0")
        .set_tag_attribute_value("table", "tabindex", "0")
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
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
    fn markdown_renders_and_images_become_their_alt_text() {
        let html = render(concat!(
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n",
            "[![build passing](https://img.shields.io/x.svg)](https://ci.example.com) ![logo](docs/logo.png) ",
            "<img src=\"https://img.example.com/y.png\" alt=\"raw\"> [home](https://example.com)\n"
        ));
        assert!(html.contains("<table tabindex=\"0\">"), "{html}");
        assert!(!html.contains("<img") && !html.contains("shields.io") && !html.contains("img.example.com"), "{html}");
        assert!(html.contains(">build passing</a>") && html.contains("logo"), "{html}");
        assert!(html.contains("href=\"https://example.com\"") && html.contains("nofollow"), "{html}");
    }
}
