//! CLIP's `basic_clean`: `ftfy.fix_text`, then HTML unescaped twice, then stripped.
//!
//! ftfy's character fixes are reproduced (C1 controls read as Windows-1252, Latin ligatures,
//! full- and half-width forms, curly quotes, line breaks, terminal escapes, control characters,
//! NFC), repeated until nothing changes as ftfy does. Its mojibake repair (re-decoding text that
//! went through the wrong encoding) is not: such text tokenizes as it stands.
//! HTML entities: numeric ones and the common named ones.
use once_cell::sync::Lazy;
use regex::{Captures, Regex};
use unicode_normalization::UnicodeNormalization;

pub fn basic_clean(text: &str) -> String {
    let fixed = fix_text(text);
    unescape_html(&unescape_html(&fixed)).trim().to_string()
}

fn fix_text(text: &str) -> String {
    // ftfy unescapes HTML itself only in text that does not look like HTML.
    let unescape = !text.contains('<');
    let mut text = text.to_string();
    for _ in 0..8 {
        let before = text.clone();
        if unescape {
            text = unescape_html(&text);
        }
        text = text.chars().flat_map(fix_char).collect();
        text = text.replace("\r\n", "\n");
        static TERMINAL_ESCAPE: Lazy<Regex> = Lazy::new(|| Regex::new(r"\x1b\[((?:\d|;)*)([a-zA-Z])").expect("compiles"));
        text = TERMINAL_ESCAPE.replace_all(&text, "").into_owned();
        text = text.chars().filter(|&c| !is_removed_control(c)).nfc().collect();
        if text == before {
            break;
        }
    }
    text
}

/// The single-character fixes, in ftfy's order.
fn fix_char(c: char) -> Vec<char> {
    let u = c as u32;
    let one = |s: &str| s.chars().collect();
    match u {
        // C1 controls are almost always Windows-1252 punctuation decoded as Latin-1.
        0x80..=0x9f => {
            let byte = [u as u8];
            let (decoded, _, _) = encoding_rs::WINDOWS_1252.decode(&byte);
            decoded.chars().collect()
        }
        _ => match c {
            'Ĳ' => one("IJ"),
            'ĳ' => one("ij"),
            'ŉ' => one("ʼn"),
            'Ǳ' => one("DZ"),
            'ǲ' => one("Dz"),
            'ǳ' => one("dz"),
            'Ǆ' => one("DŽ"),
            'ǅ' => one("Dž"),
            'ǆ' => one("dž"),
            'Ǉ' => one("LJ"),
            'ǈ' => one("Lj"),
            'ǉ' => one("lj"),
            'Ǌ' => one("NJ"),
            'ǋ' => one("Nj"),
            'ǌ' => one("nj"),
            'ﬀ' => one("ff"),
            'ﬁ' => one("fi"),
            'ﬂ' => one("fl"),
            'ﬃ' => one("ffi"),
            'ﬄ' => one("ffl"),
            'ﬅ' => one("ſt"),
            'ﬆ' => one("st"),
            '\u{3000}' => vec![' '],
            '\u{ff01}'..='\u{ffef}' => std::iter::once(c).nfkc().collect(),
            '\u{02bc}' | '\u{2018}'..='\u{201b}' => vec!['\''],
            '\u{201c}'..='\u{201f}' => vec!['"'],
            '\r' | '\u{2028}' | '\u{2029}' | '\u{85}' => vec!['\n'],
            _ => vec![c],
        },
    }
}

/// ftfy's remove_control_chars: C0 controls but tab, newline, form feed and carriage return;
/// DEL; deprecated format characters; the byte-order mark; interlinear annotation marks.
fn is_removed_control(c: char) -> bool {
    matches!(c as u32, 0x00..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0x206a..=0x206f | 0xfeff | 0xfff9..=0xfffc)
}

/// Python's html.unescape for numeric references and the common named entities.
fn unescape_html(text: &str) -> String {
    static ENTITY: Lazy<Regex> =
        Lazy::new(|| Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]{1,31};|(?:amp|lt|gt|quot)\b)").expect("compiles"));
    if !text.contains('&') {
        return text.to_string();
    }
    ENTITY
        .replace_all(text, |caps: &Captures| {
            let body = caps[1].trim_end_matches(';');
            if let Some(num) = body.strip_prefix('#') {
                let n = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse::<u32>().ok(),
                };
                return numeric(n).to_string();
            }
            named(body).map_or_else(|| caps[0].to_string(), str::to_string)
        })
        .into_owned()
}

fn numeric(n: Option<u32>) -> String {
    match n {
        Some(n @ 0x80..=0x9f) => encoding_rs::WINDOWS_1252.decode(&[n as u8]).0.into_owned(),
        Some(0) | None => "\u{fffd}".into(),
        Some(n) => char::from_u32(n).unwrap_or('\u{fffd}').to_string(),
    }
}

fn named(name: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("amp", "&"),
        ("lt", "<"),
        ("gt", ">"),
        ("quot", "\""),
        ("apos", "'"),
        ("nbsp", "\u{a0}"),
        ("copy", "©"),
        ("reg", "®"),
        ("trade", "™"),
        ("hellip", "…"),
        ("mdash", "—"),
        ("ndash", "–"),
        ("lsquo", "‘"),
        ("rsquo", "’"),
        ("ldquo", "“"),
        ("rdquo", "”"),
        ("laquo", "«"),
        ("raquo", "»"),
        ("deg", "°"),
        ("times", "×"),
        ("divide", "÷"),
        ("plusmn", "±"),
        ("middot", "·"),
        ("bull", "•"),
        ("sect", "§"),
        ("para", "¶"),
        ("euro", "€"),
        ("pound", "£"),
        ("yen", "¥"),
        ("cent", "¢"),
        ("frac12", "½"),
        ("frac14", "¼"),
        ("frac34", "¾"),
        ("sup2", "²"),
        ("sup3", "³"),
        ("micro", "µ"),
        ("szlig", "ß"),
        ("aacute", "á"),
        ("Aacute", "Á"),
        ("agrave", "à"),
        ("Agrave", "À"),
        ("acirc", "â"),
        ("auml", "ä"),
        ("Auml", "Ä"),
        ("atilde", "ã"),
        ("aring", "å"),
        ("aelig", "æ"),
        ("ccedil", "ç"),
        ("Ccedil", "Ç"),
        ("eacute", "é"),
        ("Eacute", "É"),
        ("egrave", "è"),
        ("Egrave", "È"),
        ("ecirc", "ê"),
        ("euml", "ë"),
        ("iacute", "í"),
        ("igrave", "ì"),
        ("icirc", "î"),
        ("iuml", "ï"),
        ("ntilde", "ñ"),
        ("Ntilde", "Ñ"),
        ("oacute", "ó"),
        ("ograve", "ò"),
        ("ocirc", "ô"),
        ("ouml", "ö"),
        ("Ouml", "Ö"),
        ("otilde", "õ"),
        ("oslash", "ø"),
        ("uacute", "ú"),
        ("ugrave", "ù"),
        ("ucirc", "û"),
        ("uuml", "ü"),
        ("Uuml", "Ü"),
        ("yacute", "ý"),
    ];
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_matches_ftfy_and_html_unescape_on_common_cases() {
        assert_eq!(basic_clean("  “Smart” quotes ‘here’ "), "\"Smart\" quotes 'here'");
        assert_eq!(basic_clean("ﬁne ﬂowers"), "fine flowers");
        assert_eq!(basic_clean("ＦＵＬＬ　ｗｉｄｔｈ"), "FULL width");
        assert_eq!(basic_clean("fish &amp;amp; chips &#233;t&eacute; &#x41;"), "fish & chips été A");
        assert_eq!(basic_clean("cafe\u{301}"), "café");
        assert_eq!(basic_clean("bell\u{7}\u{feff}less"), "bellless");
        assert_eq!(basic_clean("<b>&amp;amp;</b>"), "<b>&</b>");
        assert_eq!(basic_clean("&unknown; &amp"), "&unknown; &");
    }
}
