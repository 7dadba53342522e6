//! A tool server in Rust: one tool, `text.analyze`.

/// {"text": "..."} → {"chars", "words", "lines", "slug"}
#[no_mangle]
pub extern "C" fn analyze() -> i32 {
    caxton::tool(|args| {
        let text = args.get("text").and_then(|v| v.as_str()).ok_or("argument \"text\" must be a string")?;
        let mut slug = String::new();
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            if !slug.is_empty() {
                slug.push('-');
            }
            slug.extend(word.chars().flat_map(char::to_lowercase));
        }
        Ok(caxton::Json::object(vec![
            ("chars", text.chars().count().into()),
            ("words", text.split_whitespace().count().into()),
            ("lines", if text.is_empty() { 0 } else { text.lines().count() }.into()),
            ("slug", slug.into()),
        ]))
    })
}
