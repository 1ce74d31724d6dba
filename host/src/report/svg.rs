//! A few SVG primitives for the report's charts, written as text. Every
//! string that reaches the page goes through [`escape`]: ids, messages,
//! models and scopes come from providers and plugins.

use std::fmt::Write as _;

/// Text safe in HTML element content and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// An SVG document being written.
pub(super) struct Svg {
    out: String,
}

/// A coordinate, rounded for compact output.
fn n(x: f64) -> String {
    if !x.is_finite() {
        return "0".into();
    }
    let r = (x * 10.0).round() / 10.0;
    if r.fract() == 0.0 { format!("{}", r as i64) } else { format!("{r:.1}") }
}

impl Svg {
    pub(super) fn new(width: f64, height: f64, label: &str) -> Self {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{label}">"#,
            w = n(width),
            h = n(height),
            label = escape(label)
        );
        Svg { out }
    }

    /// A rectangle; `title` becomes its hover tooltip.
    pub(super) fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, class: &str, title: Option<&str>) {
        if w <= 0.0 || h <= 0.0 {
            return;
        }
        let _ =
            write!(self.out, r#"<rect x="{}" y="{}" width="{}" height="{}" class="{class}""#, n(x), n(y), n(w), n(h));
        match title {
            Some(t) => {
                let _ = write!(self.out, "><title>{}</title></rect>", escape(t));
            }
            None => self.out.push_str("/>"),
        }
    }

    pub(super) fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, class: &str) {
        let _ =
            write!(self.out, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="{class}"/>"#, n(x1), n(y1), n(x2), n(y2));
    }

    /// Text anchored at `anchor` (`start`, `middle`, `end`).
    pub(super) fn text(&mut self, x: f64, y: f64, anchor: &str, class: &str, text: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{}" y="{}" text-anchor="{anchor}" class="{class}">{}</text>"#,
            n(x),
            n(y),
            escape(text)
        );
    }

    pub(super) fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// About five round tick values from 0 to at least `max`.
pub(super) fn ticks(max: f64) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let step = super::data::nice_step(max / 4.0);
    let mut out = vec![0.0];
    let mut v = step;
    while v < max + step * 0.999 && out.len() < 12 {
        out.push(v);
        v += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(
            escape(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("a\u{0}b"), "a\u{fffd}b");
    }

    #[test]
    fn ticks_cover_the_maximum() {
        assert_eq!(ticks(7.0), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(100.0), [0.0, 50.0, 100.0]);
        assert_eq!(ticks(0.0), [0.0, 0.5, 1.0]);
        let mut svg = Svg::new(10.0, 10.0, "x<y");
        svg.rect(0.0, 0.0, 1.0, 1.0, "c", Some("</title><script>"));
        svg.rect(0.0, 0.0, 0.0, 1.0, "c", None);
        let out = svg.finish();
        assert!(out.contains("aria-label=\"x&lt;y\""), "{out}");
        assert!(out.contains("&lt;/title&gt;&lt;script&gt;"), "{out}");
        assert_eq!(out.matches("<rect").count(), 1, "empty shapes are left out");
    }
}
